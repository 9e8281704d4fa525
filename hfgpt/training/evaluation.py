"""The validation measure of a training run: loss, perplexity, accuracy and bits per byte on the first
`eval_batches` global batches of validation blocks, the same blocks whatever the number of processes.
`hfgpt eval` measures a saved model with this same function."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from accelerate import Accelerator

from ..config import TrainConfig
from ..data.batches import BatchLayout, eval_blocks, fetch_blocks, to_device
from ..data.prepare import PreparedData
from ..data.token_bytes import bits_per_byte, target_bytes, token_byte_lengths
from .criterion import next_token_loss
from .metrics import TokenMetrics


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: PreparedData, cfg: TrainConfig, layout: BatchLayout,
             accelerator: Accelerator, progress: Callable[[Iterable[Any]], Iterable[Any]] = iter) -> dict[str, float]:
    """Loss, perplexity, accuracy and bits per byte, summed over every process; the model is left in training
    mode. `progress` wraps the micro-batches (a progress bar)."""
    model.eval()
    metrics = TokenMetrics(accelerator.device)
    with torch.compiler.set_stance("force_eager"):  # a compiled model: no second graph for evaluation
        for block_ids, counted in progress(eval_blocks(len(data.valid), cfg.training.eval_batches, layout,
                                                       accelerator.process_index)):
            batch = to_device(fetch_blocks(data.valid, block_ids, data.tokenizer.pad_token_id), accelerator.device)
            logits = model(input_ids=batch["input_ids"], use_cache=False).logits
            if counted:
                loss = next_token_loss(logits, batch["labels"]).cross_entropy
                metrics.add(metrics.measure(logits, batch["labels"], loss))
    model.train()
    result = metrics.read(accelerator)
    if result:  # the evaluated blocks are the first `evaluated_blocks`, on every process alike
        tokens, text_bytes = target_bytes(data.valid, evaluated_blocks(len(data.valid), cfg, layout),
                                          token_byte_lengths(data.tokenizer), data.tokenizer.pad_token_id)
        result["bpb"] = bits_per_byte(result["loss"], tokens, text_bytes)
    return result


def evaluated_blocks(num_blocks: int, cfg: TrainConfig, layout: BatchLayout) -> int:
    """How many validation blocks (the first ones) a validation reads."""
    return min(num_blocks, cfg.training.eval_batches * layout.global_batch)
