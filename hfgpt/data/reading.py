"""A source's text, opened (`hfgpt.data.sources.load_parts`), read three ways without ever holding it whole:
as tokenizing tasks (`tasks`), as chunks for training a tokenizer on all of it (`chunks`), and as a uniform
sample of it (`sample`): evenly spaced windows of the .txt files, every k-th row of a dataset.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pyarrow.compute as pc
from datasets import Dataset

from .chunking import cut_at_or_after, file_spans, pieces, read_span, text_chunks
from .encoding import Rows, Span, Task
from .sources import Part

ROWS_PER_TASK = 1000  # documents of a dataset per tokenizing task
SAMPLE_WINDOW = 1 << 16  # bytes of each window of a .txt sample
TRAINING_PIECE = 1 << 16  # characters per string fed to a tokenizer's trainer


def text_bytes(rows: Dataset, start: int = 0, stop: int | None = None) -> int:
    """UTF-8 bytes of the text of rows `[start, stop)`, read from the Arrow offsets, not the text."""
    column = rows.data.column("text").slice(start, (len(rows) if stop is None else stop) - start)
    return int(pc.sum(pc.binary_length(column)).as_py() or 0)


@dataclass(frozen=True)
class SourceText:
    """The parts of one source's text, in order."""

    origin: str
    parts: tuple[Part, ...]

    @cached_property
    def size(self) -> int:
        """Bytes of text in all."""
        return sum(_part_size(part) for part in self.parts)

    @property
    def datasets(self) -> list[Dataset | None]:
        """Each part's rows (None for .txt files), as `Rows` tasks number them."""
        return [part.rows for part in self.parts]

    def tasks(self, cut: bool) -> Iterator[Task]:
        """The tokenizing tasks, in order; `cut`: .txt files in spans cut at safe cuts, else each file whole."""
        for index, part in enumerate(self.parts):
            if part.rows is not None:
                for start in range(0, len(part.rows), ROWS_PER_TASK):
                    stop = min(start + ROWS_PER_TASK, len(part.rows))
                    yield Rows(index, start, stop, text_bytes(part.rows, start, stop))
                continue
            for path in part.files:
                size = path.stat().st_size
                spans = file_spans(path) if cut else [(0, size)]
                yield from (Span(path, start, end, start == 0, end == size) for start, end in spans)

    def chunks(self) -> Iterator[str]:
        """All the text, in pieces cut at safe cuts, for a tokenizer's trainer."""
        for part in self.parts:
            if part.rows is not None:
                for batch in part.rows.iter(batch_size=ROWS_PER_TASK):
                    for text in batch["text"]:
                        yield from pieces(text or "", TRAINING_PIECE)
                continue
            for path in part.files:
                for chunk in text_chunks(path):
                    yield from pieces(chunk, TRAINING_PIECE)

    def sample(self, fraction: float) -> Iterator[str]:
        """About `fraction` of the text, spread evenly over all of it (all of it from 1 on)."""
        if fraction >= 1:
            yield from self.chunks()
            return
        for part in self.parts:
            if part.rows is not None:
                yield from _sample_rows(part.rows, fraction)
            else:
                for path in part.files:
                    yield from _sample_file(path, fraction)


def _part_size(part: Part) -> int:
    return text_bytes(part.rows) if part.rows is not None else sum(path.stat().st_size for path in part.files)


def _evenly(count: int, fraction: float) -> list[int]:
    """About `count * fraction` of the indices 0..count-1, evenly spaced (the middle of each stretch)."""
    chosen = max(1, round(count * fraction))
    return [int((index + 0.5) * count / chosen) for index in range(chosen)]


def _sample_rows(rows: Dataset, fraction: float) -> Iterator[str]:
    chosen = _evenly(len(rows), fraction)
    for start in range(0, len(chosen), ROWS_PER_TASK):
        for text in rows[chosen[start:start + ROWS_PER_TASK]]["text"]:
            yield from pieces(text or "", TRAINING_PIECE)


def _sample_file(path: Path, fraction: float) -> Iterator[str]:
    """Windows of about SAMPLE_WINDOW bytes, evenly spaced, each starting and ending at a safe cut (or an end of
    the file), so that no word is cut in two."""
    size = path.stat().st_size
    with open(path, "rb") as file:
        for window in _evenly(max(1, size // SAMPLE_WINDOW), fraction):
            start = cut_at_or_after(file, window * SAMPLE_WINDOW, size) if window else 0
            end = cut_at_or_after(file, start + SAMPLE_WINDOW, size)
            if end > start:
                yield read_span(path, start, end)
