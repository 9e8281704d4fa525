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

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from datasets import Dataset

from ..config import TrainingSection
from ..errors import HfGptError

IGNORE_INDEX = -100  # the label of a position that is not a target (padding), as torch's cross-entropy skips it


@dataclass(frozen=True)
class BatchLayout:
    """How one optimizer step's sequences are split over processes and accumulation steps."""

    micro_batch: int  # sequences per process per forward pass
    grad_accum_steps: int
    world_size: int

    @property
    def global_batch(self) -> int:
        return self.micro_batch * self.grad_accum_steps * self.world_size

    def describe(self, seq_len: int) -> str:
        return (f"batch: {self.micro_batch} sequences x {self.grad_accum_steps} accumulation x "
                f"{self.world_size} process(es) = {self.global_batch} sequences = "
                f"{self.global_batch * seq_len:,} tokens per optimizer step")


def resolve_layout(training: TrainingSection, seq_len: int, world_size: int) -> BatchLayout:
    """Turn the batch settings into micro-batch x accumulation x processes.

    With `token_batch_size` the global batch is fixed in tokens, so it is the same on any number of
    devices and only the accumulation changes; otherwise each device takes `batch_size` sequences
    per step (times an explicit `grad_accum_steps`). Either way a micro-batch is kept within
    `max_sentences_per_device` and `max_tokens_per_device` by accumulating more, smaller ones.
    """
    t = training
    if t.token_batch_size:
        global_batch, rest = divmod(t.token_batch_size, seq_len)
        if global_batch == 0 or rest or global_batch % world_size:
            per_step = seq_len * world_size
            fits = max(per_step, t.token_batch_size // per_step * per_step)
            raise HfGptError(
                f"--token-batch-size {t.token_batch_size} must be a multiple of seq_len x processes = "
                f"{seq_len} x {world_size} = {per_step} tokens, so every process gets whole sequences; "
                f"for example --token-batch-size {fits}.")
        per_device = global_batch // world_size
    else:
        per_device = t.batch_size * max(t.grad_accum_steps, 1)
    if t.max_tokens_per_device and t.max_tokens_per_device < seq_len:
        raise HfGptError(f"--max-tokens-per-device {t.max_tokens_per_device} is less than one sequence of "
                         f"{seq_len} tokens; raise it to at least {seq_len}.")
    caps = [cap for cap in (t.max_sentences_per_device, t.max_tokens_per_device // seq_len) if cap]
    cap = min(caps, default=per_device)
    if t.token_batch_size and t.grad_accum_steps:
        accum = t.grad_accum_steps
        if per_device % accum or per_device // accum > cap:
            raise HfGptError(
                f"--grad-accum-steps {accum} cannot split the {per_device} sequences each of {world_size} "
                f"process(es) takes per step (--token-batch-size {t.token_batch_size}) into equal micro-batches"
                f"{f' of at most {cap}' if caps else ''}; set --grad-accum-steps 0 to derive it.")
    else:
        accum = max(math.ceil(per_device / cap), t.grad_accum_steps)
        while per_device % accum:  # equal micro-batches: the smallest divisor that respects the cap
            accum += 1
    return BatchLayout(per_device // accum, accum, world_size)


class EpochStream:
    """An endless stream of block ids: epoch `e` is `permutation(num_blocks)` seeded by `(*key, e)`."""

    def __init__(self, num_blocks: int, key: tuple[int, ...]):
        self.num_blocks, self.key = num_blocks, key
        self._epoch = -1
        self._permutation = np.empty(0, dtype=np.int64)

    def _epoch_permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            self._permutation = np.random.default_rng([*self.key, epoch]).permutation(self.num_blocks)
            self._epoch = epoch
        return self._permutation

    def blocks_at(self, start: int, stop: int) -> np.ndarray:
        """The block ids at stream positions `[start, stop)`."""
        epochs, offsets = np.divmod(np.arange(start, stop), self.num_blocks)
        blocks = np.empty_like(offsets)
        for epoch in np.unique(epochs):
            in_epoch = epochs == epoch
            blocks[in_epoch] = self._epoch_permutation(int(epoch))[offsets[in_epoch]]
        return blocks


class BlockOrder:
    """The block ids of each step: positions `[s * G, (s + 1) * G)` of one `EpochStream` keyed by the seed."""

    def __init__(self, num_blocks: int, layout: BatchLayout, seed: int):
        self.num_blocks = num_blocks
        self.layout = layout
        self.stream = EpochStream(num_blocks, (seed,))

    def step_blocks(self, step: int) -> np.ndarray:
        """The `global_batch` block ids read by optimizer step `step` (0-based), in chunk order."""
        return self.stream.blocks_at(step * self.layout.global_batch, (step + 1) * self.layout.global_batch)

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
        labels[input_ids == pad_token_id] = IGNORE_INDEX
    return {"input_ids": input_ids, "labels": labels}


def eval_blocks(num_blocks: int, batches: int, layout: BatchLayout, rank: int) -> Iterator[tuple[np.ndarray, bool]]:
    """The validation micro-batches of `rank` as (block ids, counted).

    The evaluated set is the first `batches` global batches of the validation blocks (at most all
    of them, each once), so it is the same on any number of processes. It is cut into micro-batches
    dealt round-robin to the processes; every process runs the same number of forward passes (ZeRO-3
    needs all of them in each), so a process short of work repeats one batch with `counted` False.
    """
    size = min(num_blocks, batches * layout.global_batch)
    chunks = [np.arange(start, min(start + layout.micro_batch, size)) for start in range(0, size, layout.micro_batch)]
    for index in range(rank, rank + -(-len(chunks) // layout.world_size) * layout.world_size, layout.world_size):
        yield (chunks[index], True) if index < len(chunks) else (chunks[0], False)


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """Copy a batch to `device`; from pinned memory on CUDA, so the copy does not wait for the GPU."""
    if device.type == "cuda":
        batch = {k: v.pin_memory() for k, v in batch.items()}
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
