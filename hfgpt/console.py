"""What a launch prints, and what it keeps quiet: the libraries under hfgpt report steps that hfgpt reports
itself (loading local files, saving the packed set, writing model shards) or that are not the user's business
(DeepSpeed's notice that it found no GPU, accelerate's notice that safetensors stores a tied head once, datasets'
report of a .jsonl line that pyarrow cannot parse, which hfgpt names by its file and line)."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

import datasets
from transformers.utils import logging as transformers_logging


class _DropMessages(logging.Filter):
    """Drops log records whose message holds one of `fragments`."""

    def __init__(self, *fragments: str) -> None:
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(fragment in message for fragment in self.fragments)


_NOTICES = {
    # DeepSpeed's op builders probe for an accelerator when accelerate merely checks for DeepSpeed
    "DeepSpeed": _DropMessages("Setting accelerator to CPU"),
    # every checkpoint of a tied model; the resume tests prove the head comes back tied
    "accelerate.utils.other": _DropMessages("Removed shared tensor"),
    # a .jsonl line pyarrow cannot parse: hfgpt names the file and the line (hfgpt.data.checks.failures_named)
    "datasets.packaged_modules.json.json": _DropMessages("Failed to load JSON from file"),
}


def bars_shown(asked: bool) -> bool:
    """Whether progress bars draw: when asked for, on a terminal. Where stderr is a file (a log, CI, Slurm),
    every frame of a bar would be one more line of it between the metric lines, which say the same."""
    return asked and sys.stderr.isatty()


def quiet_libraries(progress_bars: bool = True) -> None:
    """Silence the notices above and transformers' shard bars; without `progress_bars` (or a terminal to draw
    them on), every library bar."""
    for name, notice in _NOTICES.items():
        if notice not in logging.getLogger(name).filters:
            logging.getLogger(name).addFilter(notice)
    transformers_logging.disable_progress_bar()
    if not bars_shown(progress_bars):
        datasets.disable_progress_bars()


@contextlib.contextmanager
def datasets_bars_off() -> Iterator[None]:
    """datasets' own progress bars off for a step that hfgpt reports in its own words."""
    if datasets.is_progress_bar_enabled():
        datasets.disable_progress_bars()
        try:
            yield
        finally:
            datasets.enable_progress_bars()
    else:
        yield
