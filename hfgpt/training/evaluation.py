"""The validation measure of a training run: loss, perplexity, accuracy and bits per byte on the first
`eval_batches` global batches of validation blocks, the same blocks whatever the number of processes. A mixture's
validation sets (its `valid_parts`) are each measured so, and the run's `valid` line is their token-weighted mean.
`hfgpt eval` measures a saved model with this same function."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator

from ..config import TrainConfig
from ..data.batches import BatchLayout, eval_blocks, fetch_blocks, to_device
from ..data.prepare import PreparedData
from ..data.prepared import Part
from ..data.token_bytes import bits_per_byte, target_bytes, token_byte_lengths
from .criterion import next_token_loss
from .metrics import TokenMetrics


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: PreparedData, cfg: TrainConfig, layout: BatchLayout,
             accelerator: Accelerator, progress: Callable[[Iterable[Any]], Iterable[Any]] = iter) -> dict[str, Any]:
    """Loss, perplexity, accuracy and bits per byte, summed over every process; the model is left in training
    mode. `progress` wraps the micro-batches (a progress bar). With several validation sets, `sources` holds each
    one's measures by name, and the others are over all of them."""
    parts = data.valid_parts or (Part("", 0, len(data.valid), data.valid_tokens),)
    model.eval()
    with torch.compiler.set_stance("force_eager"):  # a compiled model: no second graph for evaluation
        lengths = token_byte_lengths(data.tokenizer)
        measured = [_measure(model, data, part, cfg, layout, accelerator, progress, lengths) for part in parts]
    model.train()
    sums = [sum(column) for column in zip(*(part_sums for part_sums, _ in measured), strict=True)]
    tokens, text_bytes = (sum(column) for column in zip(*(counts for _, counts in measured), strict=True))
    result: dict[str, Any] = _with_bpb(TokenMetrics.summarize(sums), tokens, text_bytes)
    if data.valid_parts:
        result["sources"] = {part.name: _with_bpb(TokenMetrics.summarize(part_sums), *counts)
                             for part, (part_sums, counts) in zip(parts, measured, strict=True)}
    return result


def _measure(model: torch.nn.Module, data: PreparedData, part: Part, cfg: TrainConfig, layout: BatchLayout,
             accelerator: Accelerator, progress: Callable[[Iterable[Any]], Iterable[Any]], lengths: np.ndarray
             ) -> tuple[list[float], tuple[int, int]]:
    """One validation set's summed metrics over every process, and its (predicted tokens, their bytes)."""
    metrics = TokenMetrics(accelerator.device)
    for block_ids, counted in progress(eval_blocks(part.blocks, cfg.training.eval_batches, layout,
                                                   accelerator.process_index)):
        batch = to_device(fetch_blocks(data.valid, part.start + block_ids, data.tokenizer.pad_token_id),
                          accelerator.device)
        logits = model(input_ids=batch["input_ids"], use_cache=False).logits
        if counted:
            loss = next_token_loss(logits, batch["labels"]).cross_entropy
            metrics.add(metrics.measure(logits, batch["labels"], loss))
    blocks = data.valid if not data.valid_parts else data.valid.select(range(part.start, part.stop))
    # the evaluated blocks are the first `evaluated_blocks`, on every process alike
    counts = target_bytes(blocks, evaluated_blocks(part.blocks, cfg, layout), lengths, data.tokenizer.pad_token_id)
    return metrics.read_sums(accelerator), counts


def _with_bpb(result: dict[str, float], tokens: int, text_bytes: int) -> dict[str, float]:
    return {**result, "bpb": bits_per_byte(result["loss"], tokens, text_bytes)} if result else result


def evaluated_blocks(num_blocks: int, cfg: TrainConfig, layout: BatchLayout) -> int:
    """How many validation blocks (the first ones) a validation reads."""
    return min(num_blocks, cfg.training.eval_batches * layout.global_batch)
