"""A mixture under `--streaming`: each source is a stream of its own (hfgpt.data.streaming), and each micro-batch of
a process is dealt to the sources as `MixedOrder` deals a step (hfgpt.data.mixture_order): by systematic sampling
of their weights at the step, with the Weyl offset of the micro-batch's slot `(step * accumulation + micro-step) *
processes + rank`. The dealing is a pure function of (seed, slot), and each source's reader keeps its own position,
so a checkpoint holds, per process, every source's position and the micro-batches taken: `continue` goes on with
exactly the blocks an uninterrupted run would have read, on the same number of processes (as a single stream)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .batches import BatchLayout
from .mixture import Schedule
from .mixture_order import deal, first_offset, schedule_weights, weyl_offsets
from .stream_batches import Position, StreamReader
from .streaming import TokenStream


@dataclass(frozen=True)
class MixedStream:
    """The sources' streams of a streamed mixture, by name, and their weights."""

    names: tuple[str, ...]
    streams: tuple[TokenStream, ...]
    schedules: tuple[Schedule, ...]

    @contextlib.contextmanager
    def failures_named(self) -> Iterator[None]:
        """Around reading the streams: a damaged local file of any source is named."""
        with contextlib.ExitStack() as stack:
            for stream in self.streams:
                stack.enter_context(stream.failures_named())
            yield


@dataclass
class MixedPosition:
    """Where a process is in each source's stream, and how many micro-batches it has taken."""

    sources: dict[str, Position]
    micro_batches: int = 0

    @property
    def passes(self) -> int:
        """Passes completed over every source."""
        return min(position.passes for position in self.sources.values())

    def to_dict(self) -> dict[str, Any]:
        return {"micro_batches": self.micro_batches,
                "sources": {name: position.to_dict() for name, position in self.sources.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, names: tuple[str, ...]) -> MixedPosition:
        saved = (data or {}).get("sources", {})
        return cls({name: Position.from_dict(saved[name]) if name in saved else Position() for name in names},
                   (data or {}).get("micro_batches", 0))


class MixedReader:
    """Cuts one process's micro-batches out of the sources' streams, each source's share dealt by the slot."""

    def __init__(self, mixed: MixedStream, layout: BatchLayout, rank: int, seq_len: int, seed: int, max_steps: int,
                 start: MixedPosition) -> None:
        self.mixed, self.layout, self.rank, self.max_steps = mixed, layout, rank, max_steps
        self.readers = [StreamReader(lambda stream=stream: stream.part(rank, layout.world_size), stream.encoder(),
                                     layout.micro_batch, seq_len, start.sources[name])
                        for name, stream in zip(mixed.names, mixed.streams, strict=True)]
        self.position, self.u0, self.seed = start, first_offset(seed), seed

    def counts(self, micro_batches: int) -> np.ndarray:
        """How many blocks each source gives this process's micro-batch number `micro_batches` (0-based)."""
        step, micro_step = divmod(micro_batches, self.layout.grad_accum_steps)
        slot = (step * self.layout.grad_accum_steps + micro_step) * self.layout.world_size + self.rank
        weights = schedule_weights(list(self.mixed.schedules), np.array([step]), self.max_steps)
        return deal(weights, self.layout.micro_batch, weyl_offsets(self.u0, np.array([slot])))[0]

    def next_micro_batch(self) -> tuple[np.ndarray, list[str], MixedPosition]:
        """(blocks `(micro_batch, seq_len)` int32, each as `source:number`, the position after them)."""
        taken = self.position.micro_batches
        blocks, numbers, sources = [], [], dict(self.position.sources)
        for name, reader, count in zip(self.mixed.names, self.readers, self.counts(taken), strict=True):
            if count:
                part, part_numbers, sources[name] = reader.next_micro_batch(int(count))
                blocks.append(part)
                numbers += [f"{name}:{number}" for number in part_numbers]
        order = np.random.default_rng([self.seed, taken, self.rank]).permutation(self.layout.micro_batch)
        self.position = MixedPosition(sources, taken + 1)
        return np.concatenate(blocks)[order], [numbers[index] for index in order], self.position


__all__ = ["MixedPosition", "MixedReader", "MixedStream"]
