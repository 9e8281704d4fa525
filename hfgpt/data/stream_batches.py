"""The training blocks of one process under `--streaming`, read from its part of the stream, and the position a
checkpoint keeps so that `continue` goes on with exactly the blocks an uninterrupted run would have read.

A process tokenizes the examples of its part (`TokenStream.part`) one after the other and cuts the ids into
micro-batches of `micro_batch` blocks of `seq_len` tokens, in a thread that stays a few micro-batches ahead of
the loop. The position after a micro-batch is `(pass, the dataset's state_dict before the example being cut,
how many of that example's ids were already taken, blocks read)`: compact (no ids), and exact, since the
example's ids are the same when it is read and tokenized again. When the part runs out, the next pass starts
it again from the beginning.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from datasets import IterableDataset

from ..errors import HfGptError

PREFETCH = 4  # micro-batches tokenized ahead of the loop


@dataclass
class Position:
    """Where a process is in its part of the stream (see the module docstring)."""

    passes: int = 0
    dataset: dict[str, Any] | None = None  # state_dict before the example being cut; None: its pass's start
    offset: int = 0  # ids of that example already in blocks
    blocks: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"pass": self.passes, "dataset": self.dataset, "offset": self.offset, "blocks": self.blocks}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Position:
        return cls(data["pass"], data["dataset"], data["offset"], data["blocks"])


@dataclass
class _Cursor:
    """The example being cut into blocks: its ids, how many are taken, and the state from before it."""

    ids: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int32))
    taken: int = 0
    state: dict[str, Any] | None = None


class StreamReader:
    """Cuts one process's stream into micro-batches, from a `Position`; `next_micro_batch` is single-threaded."""

    def __init__(self, make: Callable[[], IterableDataset], encode: Callable[[dict], np.ndarray],
                 micro_batch: int, seq_len: int, start: Position) -> None:
        self.make, self.encode = make, encode
        self.micro_batch, self.seq_len = micro_batch, seq_len
        self.passes, self.blocks = start.passes, start.blocks
        self.cursor = _Cursor(state=start.dataset)
        self.examples = self._examples(start.dataset)
        if start.dataset is not None or start.offset:  # the example the position was cut in, again
            self._advance()
            self.cursor.taken = start.offset

    def next_micro_batch(self, count: int = 0) -> tuple[np.ndarray, list[int], Position]:
        """(blocks `(micro_batch, seq_len)` int32, their numbers in this stream, the position after them); `count`
        blocks instead, when given (a mixture's share of a micro-batch)."""
        count = count or self.micro_batch
        parts, need = [], count * self.seq_len
        while need:
            if self.cursor.taken == len(self.cursor.ids):
                self._advance()
            take = self.cursor.ids[self.cursor.taken:self.cursor.taken + need]
            self.cursor.taken += len(take)
            parts.append(take)
            need -= len(take)
        numbers = list(range(self.blocks, self.blocks + count))
        self.blocks += count
        position = Position(self.passes, self.cursor.state, self.cursor.taken, self.blocks)
        return np.concatenate(parts).reshape(count, self.seq_len), numbers, position

    def _advance(self) -> None:
        """Make the next example (of this pass, or the first of the next) the one being cut."""
        for _attempt in range(2):
            example = next(self.examples, None)
            if example is not None:
                self.cursor = _Cursor(self.encode(example), 0, self.before)
                self.before = self.dataset.state_dict()  # after this example: before the next one
                return
            self.passes += 1
            self.examples = self._examples(None)
        raise HfGptError("This process's part of the training stream holds no text: there are fewer documents (or "
                         "files) than processes. Train on fewer processes, or without --streaming.")

    def _examples(self, state: dict[str, Any] | None) -> Iterator[dict]:
        """A new iterator over this process's part, from `state` (None: from its start)."""
        self.dataset = self.make()
        if state is not None:
            self.dataset.load_state_dict(state)
        self.before = state
        return iter(self.dataset)


class Prefetcher:
    """Runs a `StreamReader` in a thread, PREFETCH micro-batches ahead; `position` is after the last one taken."""

    def __init__(self, reader: Any, start: Any) -> None:  # a StreamReader or a mixture's, and its Position
        self.position = start
        self._queue: queue.Queue = queue.Queue(maxsize=PREFETCH)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, args=(reader,), daemon=True, name="hfgpt-stream")
        self._thread.start()

    def take(self) -> tuple[torch.Tensor, list[int]]:
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        blocks, numbers, self.position = item
        return torch.from_numpy(blocks.astype(np.int64)), numbers

    def close(self) -> None:
        self._stop.set()
        while not self._queue.empty():
            self._queue.get_nowait()

    def _fill(self, reader: StreamReader) -> None:
        try:
            while not self._stop.is_set():
                item = reader.next_micro_batch()
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except BaseException as error:  # handed to the loop, which raises it
            self._queue.put(error)
