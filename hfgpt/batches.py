"""Which packed blocks every optimizer step reads, as a pure function of the seed and the step.

The training blocks form an endless stream of epochs, each a fresh seeded permutation. Step `s`
reads stream positions `[s * G, (s + 1) * G)` where `G` is the global batch in sequences, so a
batch may straddle two epochs and no block is skipped at an epoch's end. The global batch is then
cut into `accum * world` micro-batches: micro-step `m` of rank `r` takes chunk `m * world + r`.
Because the union of chunks of one step does not depend on how they are spread over processes and
accumulation, 1 process x 2 accumulation steps and 2 processes x 1 read the same sequences, and
resuming at any step costs one permutation, not a walk through the data.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from datasets import Dataset


@dataclass(frozen=True)
class BatchLayout:
    """How one optimizer step's sequences are split over processes and accumulation steps."""

    micro_batch: int  # sequences per process per forward pass
    grad_accum_steps: int
    world_size: int

    @property
    def global_batch(self) -> int:
        return self.micro_batch * self.grad_accum_steps * self.world_size


class BlockOrder:
    """The block ids of each step: epoch `e` is `permutation(num_blocks)` seeded by `(seed, e)`."""

    def __init__(self, num_blocks: int, layout: BatchLayout, seed: int):
        self.num_blocks = num_blocks
        self.layout = layout
        self.seed = seed
        self._epoch = -1
        self._permutation = np.empty(0, dtype=np.int64)

    def _epoch_permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            self._permutation = np.random.default_rng([self.seed, epoch]).permutation(self.num_blocks)
            self._epoch = epoch
        return self._permutation

    def step_blocks(self, step: int) -> np.ndarray:
        """The `global_batch` block ids read by optimizer step `step` (0-based), in chunk order."""
        positions = np.arange(step * self.layout.global_batch, (step + 1) * self.layout.global_batch)
        epochs, offsets = np.divmod(positions, self.num_blocks)
        blocks = np.empty_like(positions)
        for epoch in np.unique(epochs):
            in_epoch = epochs == epoch
            blocks[in_epoch] = self._epoch_permutation(int(epoch))[offsets[in_epoch]]
        return blocks

    def micro_blocks(self, step: int, micro_step: int, rank: int) -> np.ndarray:
        """The block ids that process `rank` reads in accumulation step `micro_step` of `step`."""
        chunk = micro_step * self.layout.world_size + rank
        size = self.layout.micro_batch
        return self.step_blocks(step)[chunk * size : (chunk + 1) * size]

    def epoch_at(self, step: int) -> float:
        """Epochs completed when `step` steps are done, as a fraction."""
        return step * self.layout.global_batch / self.num_blocks


def fetch_blocks(dataset: Dataset, block_ids: np.ndarray, pad_token_id: int | None) -> dict[str, torch.Tensor]:
    """Read blocks from the memory-mapped Arrow table as `input_ids` and `labels`, both (B, T).

    Only the last block of a packed set may hold padding; its label positions are set to -100.
    """
    input_ids = torch.from_numpy(np.asarray(dataset[block_ids.tolist()]["input_ids"], dtype=np.int64))
    labels = input_ids.clone()
    if pad_token_id is not None:
        labels[input_ids == pad_token_id] = -100
    return {"input_ids": input_ids, "labels": labels}


def eval_blocks(num_blocks: int, batches: int, layout: BatchLayout, rank: int) -> Iterator[np.ndarray]:
    """The fixed validation micro-batches of `rank`: the first blocks in order.

    Never more rounds than it takes to cover the set once; only the last round may wrap around.
    """
    per_round = layout.micro_batch * layout.world_size
    for batch in range(min(batches, -(-num_blocks // per_round))):
        start = batch * per_round + rank * layout.micro_batch
        yield np.arange(start, start + layout.micro_batch) % num_blocks
