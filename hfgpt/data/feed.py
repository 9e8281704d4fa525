"""What the training loop reads at each micro-step, whichever way the data was prepared: `train_batches` gives
packed blocks in the seeded order of `BlockOrder` or of a mixture's `MixedOrder` (`PackedBatches`), already on the
device (the loop asks for the next micro-batch while the current one runs), or, under `--streaming`, the next
blocks of this process's part of the stream (`StreamBatches`, read ahead by a thread), which also say where to
resume."""

from __future__ import annotations

from typing import Any, Protocol

import torch

from ..config import TrainConfig
from ..errors import HfGptError
from .batches import BatchLayout, BlockOrder, fetch_blocks, to_device
from .mixture_order import MixedOrder
from .mixture_stream import MixedPosition, MixedReader, MixedStream
from .prepared import PreparedData
from .stream_batches import Position, Prefetcher, StreamReader


class TrainBatches(Protocol):
    def micro_batch(self, step: int, micro_step: int) -> tuple[dict[str, torch.Tensor], list[int | str]]:
        """`input_ids` and `labels` (B, T) for this process, on its device, and the numbers of the blocks they
        hold."""

    def prepare_next(self) -> None:
        """Start fetching the micro-batch after the last one taken, while the device computes."""

    def epoch_at(self, step: int) -> float:
        """Passes over the training data completed when `step` steps are done."""

    def source_epochs(self, step: int) -> dict[str, float]:
        """A mixture's passes over each source when `step` steps are done, as `epoch/NAME` keys ({} for one)."""

    def position(self) -> dict[str, Any] | None:
        """Where this process is in the stream (None for packed blocks, whose order needs no memory)."""

    def close(self) -> None: ...


def train_batches(data: PreparedData, layout: BatchLayout, cfg: TrainConfig, rank: int,
                  saved: list[dict[str, Any]], device: torch.device) -> TrainBatches:
    """The training micro-batches of process `rank` for `device`; `saved`: the stream positions a checkpoint holds,
    by rank."""
    if data.stream is None:
        return PackedBatches(data, block_order(data, layout, cfg), rank, device)
    return StreamBatches(data, layout, cfg, rank, saved, device)


def block_order(data: PreparedData, layout: BatchLayout, cfg: TrainConfig) -> BlockOrder | MixedOrder:
    """The seeded order of the packed training blocks: of one source, or of a mixture's weighted sources."""
    if not data.train_parts:
        return BlockOrder(len(data.train), layout, cfg.training.seed)
    parts = data.train_parts
    return MixedOrder([p.blocks for p in parts], [p.start for p in parts], list(data.schedules), layout,
                      cfg.training.seed, cfg.training.max_steps, cfg.data.max_epochs_per_source)


class PackedBatches:
    def __init__(self, data: PreparedData, order: BlockOrder | MixedOrder, rank: int, device: torch.device) -> None:
        self.order, self.data, self.rank, self.device = order, data, rank, device
        self.taken = (-1, -1)  # (step, micro-step) of the last micro-batch handed out
        self.ahead: dict[tuple[int, int], tuple[dict[str, torch.Tensor], list[int | str]]] = {}

    def micro_batch(self, step: int, micro_step: int) -> tuple[dict[str, torch.Tensor], list[int | str]]:
        self.taken = (step, micro_step)
        return self.ahead.pop(self.taken, None) or self._fetch(step, micro_step)

    def prepare_next(self) -> None:
        step, micro_step = self.taken
        following = (step, micro_step + 1) if micro_step + 1 < self.order.layout.grad_accum_steps else (step + 1, 0)
        self.ahead = {following: self._fetch(*following)}

    def _fetch(self, step: int, micro_step: int) -> tuple[dict[str, torch.Tensor], list[int | str]]:
        """The blocks from the memory-mapped table, copied to the device without waiting for it (pinned on CUDA)."""
        block_ids = self.order.micro_blocks(step, micro_step, self.rank)
        batch = fetch_blocks(self.data.train, block_ids, self.data.tokenizer.pad_token_id)
        return to_device(batch, self.device), block_ids.tolist()

    def epoch_at(self, step: int) -> float:
        return self.order.epoch_at(step)

    def source_epochs(self, step: int) -> dict[str, float]:
        if not isinstance(self.order, MixedOrder):
            return {}
        epochs = self.order.source_epochs(step)
        return {f"epoch/{part.name}": float(epochs[index]) for index, part in enumerate(self.data.train_parts)}

    def position(self) -> None:
        return None

    def close(self) -> None:
        pass


class StreamBatches:
    def __init__(self, data: PreparedData, layout: BatchLayout, cfg: TrainConfig, rank: int,
                 saved: list[dict[str, Any]], device: torch.device) -> None:
        self.device = device
        world = layout.world_size
        if saved and len(saved) != world:
            raise HfGptError(
                f"This run streams its training text, and each of its {len(saved)} processes saved its own position "
                f"in the stream, which is split among the processes; it can continue only on {len(saved)} "
                f"processes, not {world}. Launch it with --num_processes {len(saved)}, or fork it.")
        self.stream = stream = data.stream
        if isinstance(stream, MixedStream):
            start = MixedPosition.from_dict(saved[rank] if saved else None, stream.names)
            reader = MixedReader(stream, layout, rank, data.seq_len, cfg.training.seed, cfg.training.max_steps, start)
        else:
            start = Position.from_dict(saved[rank]) if saved else Position()
            reader = StreamReader(lambda: stream.part(rank, world), stream.encoder(), layout.micro_batch,
                                  data.seq_len, start)
        self.prefetcher = Prefetcher(reader, start)

    def micro_batch(self, step: int, micro_step: int) -> tuple[dict[str, torch.Tensor], list[int | str]]:
        with self.stream.failures_named():  # the reading thread's failure, raised here
            input_ids, numbers = self.prefetcher.take()
        batch = {"input_ids": input_ids, "labels": input_ids.clone()}  # a stream has no padding
        return to_device(batch, self.device), numbers

    def prepare_next(self) -> None:
        pass  # the prefetcher's thread already reads ahead; its position counts only what was taken

    def epoch_at(self, step: int) -> float:
        return float(self.prefetcher.position.passes)

    def source_epochs(self, step: int) -> dict[str, float]:
        position = self.prefetcher.position
        sources = position.sources if isinstance(position, MixedPosition) else {}
        return {f"epoch/{name}": float(source.passes) for name, source in sources.items()}

    def position(self) -> dict[str, Any]:
        return self.prefetcher.position.to_dict()

    def close(self) -> None:
        self.prefetcher.close()


__all__ = ["PackedBatches", "StreamBatches", "TrainBatches", "block_order", "train_batches"]
