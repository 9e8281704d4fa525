"""Tokenizing text into one stream of ids, in parallel, in order, in bounded memory.

The work is cut into tasks of about a megabyte: a byte range of a .txt file (`Span`, ending at a safe cut,
hfgpt.data.chunking) or a range of rows of a loaded dataset (`Rows`). Each task becomes one int32 array: the
ids of its text, with EOS after every document that ends in it. `encode_tasks` runs them in `num_proc`
spawned processes (in this one when `num_proc` is 1), at most two tasks per process in flight, and yields the
arrays in task order, so the stream is the same whatever `num_proc`; a progress bar shows MB/s and the ETA.
Workers read their text themselves: only task descriptions and id arrays cross between processes.
"""

from __future__ import annotations

import os
import signal
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from itertools import chain
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer
from tqdm.auto import tqdm

from ..lifetime import signal_at_parent_death
from .chunking import documents, pieces, read_span

IN_FLIGHT_PER_PROCESS = 2


@dataclass(frozen=True)
class Span:
    """The bytes `[start, end)` of a .txt file; `first`/`last`: they start or end the file."""

    path: Path
    start: int
    end: int
    first: bool
    last: bool

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Rows:
    """Rows `[start, stop)` of the `part`-th dataset the encoder was given, one document each."""

    part: int
    start: int
    stop: int
    size: int  # bytes of text, for the progress bar


Task = Span | Rows


class Encoder:
    """Turns a task into its ids, with EOS after each document that ends in it."""

    def __init__(self, tokenizer: str, eos_id: int, cut: bool, blank_lines: bool, datasets: Sequence[Any]):
        self.tokenizer = Tokenizer.from_str(tokenizer)
        self.eos_id, self.cut, self.blank_lines, self.datasets = eos_id, cut, blank_lines, datasets

    def __call__(self, task: Task) -> np.ndarray:
        if isinstance(task, Rows):
            texts = self.datasets[task.part][task.start:task.stop]["text"]
            return self.encode([text or "" for text in texts], [True] * len(texts))
        text = read_span(task.path, task.start, task.end)
        if not self.blank_lines:
            return self.encode([text], [task.last])
        parts = documents(text, task.first)
        ends = [bool(part) and (index < len(parts) - 1 or task.last) for index, part in enumerate(parts)]
        return self.encode(parts, ends)

    def encode(self, texts: list[str], ends: list[bool]) -> np.ndarray:
        """The ids of `texts` one after the other, with EOS after those whose `ends` is true."""
        split = [pieces(text) if self.cut else [text] for text in texts]
        encodings = iter(self.tokenizer.encode_batch_fast(list(chain.from_iterable(split)),
                                                          add_special_tokens=False))
        runs: list[list[int]] = []  # the ids of each piece, and [EOS] where a document ends
        for parts, end in zip(split, ends, strict=True):
            runs.extend(next(encodings).ids for _ in parts)
            if end:
                runs.append([self.eos_id])
        return np.fromiter(chain.from_iterable(runs), dtype=np.int32)  # the fastest flattening measured here


_worker: Encoder | None = None


def _start_worker(*args: Any) -> None:
    global _worker
    signal_at_parent_death(signal.SIGKILL)  # a training process killed outright leaves no tokenizer behind
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one core per process: num_proc says how many
    _worker = Encoder(*args)


def _encode(task: Task) -> np.ndarray:
    assert _worker is not None
    return _worker(task)


def encode_tasks(tasks: Iterable[Task], encoder_args: tuple, num_proc: int, total: int, desc: str,
                 progress: bool) -> Iterator[np.ndarray]:
    """The ids of every task, in task order (see the module docstring); `total` bytes for the progress bar."""
    bar = tqdm(total=total, unit="B", unit_scale=True, desc=desc, disable=not progress, mininterval=1.0,
               smoothing=0.1)
    try:
        if num_proc <= 1:
            encoder = Encoder(*encoder_args)
            for task in tasks:
                yield encoder(task)
                bar.update(task.size)
            return
        yield from _in_processes(tasks, encoder_args, num_proc, bar)
    finally:
        bar.close()


def _in_processes(tasks: Iterable[Task], encoder_args: tuple, num_proc: int, bar: tqdm) -> Iterator[np.ndarray]:
    pool = ProcessPoolExecutor(num_proc, mp_context=get_context("spawn"), initializer=_start_worker,
                               initargs=encoder_args)
    pending: deque[tuple[Task, Future]] = deque()
    try:
        for task in tasks:
            pending.append((task, pool.submit(_encode, task)))
            if len(pending) >= IN_FLIGHT_PER_PROCESS * num_proc:
                done, future = pending.popleft()
                yield future.result()
                bar.update(done.size)
        while pending:
            done, future = pending.popleft()
            yield future.result()
            bar.update(done.size)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
