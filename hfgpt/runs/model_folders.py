"""`final/` and `best/`: `save_pretrained` folders (model + tokenizer) that replace their previous
version atomically, so a crash mid-save leaves the old one, never a half-written one.

A swap writes `.<name>.tmp`, renames the previous folder to `.<name>.old`, the new one into place, then
deletes the old copy. Only those names are ever deleted, never through a symlink: a link at a staging name
fails the save instead of being written through, and a final/ or best/ that is a link is never replaced.
"""

from __future__ import annotations

import contextlib
import errno
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from torch.distributed.fsdp import FSDPModule
from transformers import PreTrainedTokenizerBase

from ..collectives import first_failure
from ..errors import os_error_text
from ..files import recover_published, remove_made, replace_published, strict_json

EXPORTS = ("final", "best")
_STAGING = re.compile(rf"\.({'|'.join(EXPORTS)})\.(tmp|old)")


def export_model(accelerator: Accelerator, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase,
                 folder: Path, metrics: dict[str, Any] | None = None) -> None:
    """Save the model and tokenizer to `folder` (plus `metrics.json`); every process calls it, since
    ZeRO-3 gathers the weights from all of them."""
    state_dict = accelerator.get_state_dict(model)
    failure = ""
    if accelerator.is_main_process:
        staging = folder.with_name(f".{folder.name}.tmp")
        try:
            if folder.is_symlink():
                raise OSError(errno.EEXIST, "it is a symlink, which hfgpt does not replace", str(folder))
            remove_made(staging, _STAGING, ignore_errors=True)
            staging.mkdir()  # fails on a link left at that name, so nothing is written where it points
            with _as_its_own_class(accelerator.unwrap_model(model)) as unwrapped:
                unwrapped.save_pretrained(staging, state_dict=state_dict)
            tokenizer.save_pretrained(staging)
            if metrics is not None:
                (staging / "metrics.json").write_text(strict_json(metrics, indent=2) + "\n")
            replace_published(staging, folder, _STAGING)
        except OSError as error:
            remove_made(staging, _STAGING, ignore_errors=True)
            failure = os_error_text(error, staging)
    failure = first_failure(failure)
    if failure:
        raise OSError(f"could not write {folder.name}/: {failure}; the previous {folder.name}/, if any, is intact")


@contextlib.contextmanager
def _as_its_own_class(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """`model` with its own class for the length of a save. FSDP2 gives a sharded model a class it makes
    (`FSDPHfGptForCausalLM`, defined in torch), which save_pretrained would name in config.json's auto_map, copying
    torch's FSDP sources beside the weights as the model's code."""
    made = type(model)
    if not issubclass(made, FSDPModule):
        yield model
        return
    model.__class__ = next(base for base in made.__bases__ if base is not FSDPModule)
    try:
        yield model
    finally:
        model.__class__ = made


def exported_step(folder: Path) -> int:
    """The training step whose weights `folder` holds, from its `metrics.json` (0 if it has none)."""
    try:
        return int(json.loads((folder / "metrics.json").read_text()).get("step", 0))
    except (OSError, ValueError):
        return 0


def recover_exports(run_dir: Path) -> None:
    """Put back a previous final/ or best/ whose replacement was cut short between its two renames, and
    clear what a cut-short save or clean-up left."""
    for name in EXPORTS:
        recover_published(run_dir / name, _STAGING)
