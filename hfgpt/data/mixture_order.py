"""Which blocks of which source every optimizer step reads in a weighted mixture, as a pure function of the
seed and the step (the rule of `hfgpt.data.batches`, extended to several sources).

Counts. At step `t` the sources' weights (their schedules at `t`) are normalised to shares `p_i` and the step's
`G` sequences are dealt by systematic sampling: with the cumulative shares `c_i = G * (p_0 + ... + p_i)` and one
offset `u_t` in [0, 1), source `i` gets `floor(c_i + u_t) - floor(c_(i-1) + u_t)` sequences. That is always
`floor(G p_i)` or `ceil(G p_i)`, the counts add up to `G` exactly, and their mean is `G p_i` exactly when `u_t` is
uniform; `u_t` is the Weyl sequence `frac(u_0 + t * golden)`, whose even spread keeps each source's running count
within a few sequences of its target (at most 3.3 sequences over 100,000 steps in tests/data/test_mixture_order.py's
mixtures), and a whole share exact at every step (a 3:1 mixture of 16 sequences reads 12 + 4 at every step).

Blocks. Each source is an endless stream of epochs of its blocks, each a permutation seeded by
`(seed, source, epoch)` (`EpochStream`); step `t` reads the next `n_i(t)` positions of source `i`'s stream, from
`K_i(t) = n_i(0) + ... + n_i(t - 1)`. The step's blocks are then shuffled (seeded by the step), so every
micro-batch holds a mix, and cut into micro-batches exactly as `BlockOrder` cuts them: the data stay independent
of the number of processes. `K_i` is kept at every CHUNK-th step, so resuming at any step costs one pass over the
counts of the run (milliseconds for a million steps) and a step at most CHUNK count rows.

Caps. With `max_epochs` a source leaves the mixture at the first step that would take it past that many passes
over its blocks; the others share its weight from then on.
"""

from __future__ import annotations

import numpy as np

from ..errors import HfGptError
from .batches import BatchLayout, EpochStream
from .mixture import Schedule
from .prepared import Part

GOLDEN = (5 ** 0.5 - 1) / 2  # the Weyl step: the most evenly spread sequence of offsets
CHUNK = 4096  # steps between two kept cumulative counts
MIX = 0x6D6978  # in the seed of a step's shuffle, apart from the sources' epoch streams


def first_offset(seed: int) -> float:
    """The Weyl sequence's start, drawn from the seed."""
    return float(np.random.default_rng([seed, MIX]).random())


def schedule_weights(schedules: list[Schedule], steps: np.ndarray, max_steps: int) -> np.ndarray:
    """Each source's weight at each of `steps`: (len(steps), sources) float64."""
    return np.stack([schedule.at(steps, max_steps) for schedule in schedules], axis=1)


def weyl_offsets(start: float, slots: np.ndarray) -> np.ndarray:
    """The offsets `frac(start + slot * golden)` of the dealings numbered `slots`."""
    return np.modf(start + slots * GOLDEN)[0]


def deal(weights: np.ndarray, total: int, offsets: np.ndarray) -> np.ndarray:
    """Deal `total` sequences to the sources in proportion to each row of `weights` (rows with a positive sum) by
    systematic sampling at `offsets` (see the module docstring): (rows, sources) int64, each row adding up to
    `total`."""
    cumulative = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1) * total
    cumulative[:, -1] = total  # exact, whatever the rounding of the sum
    edges = np.floor(cumulative + offsets[:, None]).astype(np.int64)
    return np.diff(edges, axis=1, prepend=np.zeros_like(edges[:, :1]))


class MixedOrder:
    """The block ids of each step of a mixture; ids count from each source's `offset` in the concatenated blocks."""

    def __init__(self, sizes: list[int], offsets: list[int], schedules: list[Schedule], layout: BatchLayout,
                 seed: int, max_steps: int, max_epochs: float = 0.0):
        self.layout, self.seed, self.max_steps = layout, seed, max_steps
        self.sizes, self.offsets, self.schedules = np.array(sizes), np.array(offsets), schedules
        self.caps = np.array(sizes, dtype=np.float64) * max_epochs if max_epochs else np.full(len(sizes), np.inf)
        self.u0 = first_offset(seed)
        self.streams = [EpochStream(size, (seed, index, MIX)) for index, size in enumerate(sizes)]
        self._kept, self._left = self._walk()  # cumulative counts every CHUNK steps; the step each source leaves
        self._last: tuple[int, np.ndarray] = (-1, np.empty(0, np.int64))  # the step whose blocks were asked last

    @property
    def num_blocks(self) -> int:
        return int(self.sizes.sum())

    def counts(self, steps: np.ndarray, left: np.ndarray | None = None) -> np.ndarray:
        """How many sequences each source gives each of `steps`, a source only before the step it `left` at:
        (len(steps), sources) int64."""
        left = self._left if left is None else left
        weights = schedule_weights(self.schedules, steps, self.max_steps) * (left[None, :] > steps[:, None])
        empty = weights.sum(axis=1) <= 0
        if empty.any():
            raise HfGptError(
                f"At step {int(steps[int(np.argmax(empty))])} no source of the mixture is left to read: each one with "
                "weight above 0 has reached --max-epochs-per-source. Raise the cap, give more weight to another "
                "source, or lower --max-steps.")
        return deal(weights, self.layout.global_batch, weyl_offsets(self.u0, steps))

    def _walk(self) -> tuple[np.ndarray, np.ndarray]:
        """The cumulative counts at every CHUNK-th step up to max_steps, and the step at which each source leaves
        (never: the largest int64). A chunk in which a source passes its cap is counted again without it."""
        left = np.full(len(self.sizes), np.iinfo(np.int64).max)
        kept = [np.zeros(len(self.sizes), np.int64)]
        for start in range(0, self.max_steps, CHUNK):
            steps = np.arange(start, min(start + CHUNK, self.max_steps))
            while True:
                running = kept[-1] + np.cumsum(self.counts(steps, left), axis=0)
                over = running > self.caps
                if not over.any():
                    break
                row = int(np.argmax(over.any(axis=1)))
                left[int(np.argmax(over[row]))] = steps[row]
            kept.append(running[-1])
        return np.stack(kept), left

    def consumed(self, step: int) -> np.ndarray:
        """`K(step)`: how many blocks of each source the steps before `step` read."""
        chunk = min(step // CHUNK, len(self._kept) - 1)
        return self._kept[chunk] + self.counts(np.arange(chunk * CHUNK, step)).sum(axis=0)

    def step_blocks(self, step: int) -> np.ndarray:
        """The `global_batch` block ids read by `step`, shuffled, in chunk order (as `BlockOrder.step_blocks`)."""
        if self._last[0] == step:
            return self._last[1]
        start, counts = self.consumed(step), self.counts(np.array([step]))[0]
        blocks = np.concatenate([offset + stream.blocks_at(begin, begin + count) for stream, offset, begin, count in
                                 zip(self.streams, self.offsets, start, counts, strict=True)])
        self._last = (step, blocks[np.random.default_rng([self.seed, MIX, step]).permutation(len(blocks))])
        return self._last[1]

    def micro_blocks(self, step: int, micro_step: int, rank: int) -> np.ndarray:
        """The block ids that process `rank` reads in accumulation step `micro_step` of `step`."""
        chunk = micro_step * self.layout.world_size + rank
        size = self.layout.micro_batch
        return self.step_blocks(step)[chunk * size : (chunk + 1) * size]

    def source_epochs(self, step: int) -> np.ndarray:
        """Passes over each source's blocks completed when `step` steps are done."""
        return self.consumed(step) / self.sizes

    def epoch_at(self, step: int) -> float:
        """Blocks read over all blocks, when `step` steps are done: the mixture's passes as one number."""
        return float(self.consumed(step).sum() / self.num_blocks)


def mixture_table(names: tuple[str, ...], schedules: tuple[Schedule, ...], max_steps: int,
                  parts: tuple[Part, ...] = (), order: MixedOrder | None = None) -> str:
    """The start of a mixed run: each source's tokens, weight, share of the run's tokens and expected passes over
    it, from the packed `order`; a stream's shares are those of its weights, and its size is not known."""
    if order is not None:
        read = order.consumed(max_steps)
        shares, epochs = read / read.sum(), [f"{blocks / part.blocks:.2f}" for blocks, part in zip(read, parts,
                                                                                                    strict=True)]
        tokens = [f"{part.tokens:,}" for part in parts]
    else:
        weights = schedule_weights(list(schedules), np.arange(max_steps), max_steps)
        shares, epochs = (weights / weights.sum(axis=1, keepdims=True)).mean(axis=0), ["?"] * len(names)
        tokens = ["streamed"] * len(names)
    rows = [("source", "tokens", "weight", "share of tokens", "epochs")]
    rows += [(name, size, schedule.describe(), f"{share:.1%}", passes) for name, size, schedule, share, passes in
             zip(names, tokens, schedules, shares, epochs, strict=True)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    return f"mixture of {len(names)} sources over {max_steps:,} steps:\n" + "\n".join(lines)


__all__ = ["MixedOrder", "deal", "first_offset", "mixture_table", "schedule_weights", "weyl_offsets"]
