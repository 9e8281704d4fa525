"""What the training loop reads at each micro-step, whichever way the data was prepared: `train_batches` gives
packed blocks in the seeded order of `BlockOrder` (`PackedBatches`), or, under `--streaming`, the next blocks of
this process's part of the stream (`StreamBatches`), which also say where to resume."""

from __future__ import annotations

from typing import Any, Protocol

import torch

from ..errors import HfGptError
from .batches import BatchLayout, BlockOrder, fetch_blocks
from .prepared import PreparedData
from .stream_batches import Position, Prefetcher, StreamReader


class TrainBatches(Protocol):
    def micro_batch(self, step: int, micro_step: int) -> tuple[dict[str, torch.Tensor], list[int]]:
        """`input_ids` and `labels` (B, T) for this process, and the numbers of the blocks they hold."""

    def epoch_at(self, step: int) -> float:
        """Passes over the training data completed when `step` steps are done."""

    def position(self) -> dict[str, Any] | None:
        """Where this process is in the stream (None for packed blocks, whose order needs no memory)."""

    def close(self) -> None: ...


def train_batches(data: PreparedData, layout: BatchLayout, seed: int, rank: int,
                  saved: list[dict[str, Any]]) -> TrainBatches:
    """The training micro-batches of process `rank`; `saved`: the stream positions a checkpoint holds, by rank."""
    if data.stream is None:
        return PackedBatches(data, layout, seed, rank)
    return StreamBatches(data, layout, rank, saved)


class PackedBatches:
    def __init__(self, data: PreparedData, layout: BatchLayout, seed: int, rank: int) -> None:
        self.order, self.data, self.rank = BlockOrder(len(data.train), layout, seed), data, rank

    def micro_batch(self, step: int, micro_step: int) -> tuple[dict[str, torch.Tensor], list[int]]:
        block_ids = self.order.micro_blocks(step, micro_step, self.rank)
        return fetch_blocks(self.data.train, block_ids, self.data.tokenizer.pad_token_id), block_ids.tolist()

    def epoch_at(self, step: int) -> float:
        return self.order.epoch_at(step)

    def position(self) -> None:
        return None

    def close(self) -> None:
        pass


class StreamBatches:
    def __init__(self, data: PreparedData, layout: BatchLayout, rank: int, saved: list[dict[str, Any]]) -> None:
        world = layout.world_size
        if saved and len(saved) != world:
            raise HfGptError(
                f"This run streams its training text, and each of its {len(saved)} processes saved its own position "
                f"in the stream, which is split among the processes; it can continue only on {len(saved)} "
                f"processes, not {world}. Launch it with --num_processes {len(saved)}, or fork it.")
        start = Position.from_dict(saved[rank]) if saved else Position()
        stream = data.stream
        reader = StreamReader(lambda: stream.part(rank, world), stream.encoder(), layout.micro_batch, data.seq_len,
                              start)
        self.prefetcher = Prefetcher(reader, start)

    def micro_batch(self, step: int, micro_step: int) -> tuple[dict[str, torch.Tensor], list[int]]:
        input_ids, numbers = self.prefetcher.take()
        return {"input_ids": input_ids, "labels": input_ids.clone()}, numbers  # a stream has no padding

    def epoch_at(self, step: int) -> float:
        return float(self.prefetcher.position.passes)

    def position(self) -> dict[str, Any]:
        return self.prefetcher.position.to_dict()

    def close(self) -> None:
        self.prefetcher.close()


__all__ = ["PackedBatches", "StreamBatches", "TrainBatches", "train_batches"]
