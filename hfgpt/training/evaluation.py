"""The validation measure of a training run: loss, perplexity and accuracy on the first `eval_batches` global
batches of validation blocks, the same blocks whatever the number of processes."""

from __future__ import annotations

import torch
from accelerate import Accelerator

from ..config import TrainConfig
from ..data.batches import BatchLayout, eval_blocks, fetch_blocks, to_device
from ..data.prepare import PreparedData
from .criterion import next_token_loss
from .metrics import TokenMetrics


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: PreparedData, cfg: TrainConfig, layout: BatchLayout,
             accelerator: Accelerator) -> dict[str, float]:
    """Loss, perplexity and accuracy, summed over every process; the model is left in training mode."""
    model.eval()
    metrics = TokenMetrics(accelerator.device)
    with torch.compiler.set_stance("force_eager"):  # a compiled model: no second graph for evaluation
        for block_ids, counted in eval_blocks(len(data.valid), cfg.training.eval_batches, layout,
                                              accelerator.process_index):
            batch = to_device(fetch_blocks(data.valid, block_ids, data.tokenizer.pad_token_id), accelerator.device)
            logits = model(input_ids=batch["input_ids"], use_cache=False).logits
            if counted:
                metrics.add(metrics.measure(logits, batch["labels"], next_token_loss(logits, batch["labels"])[0]))
    model.train()
    return metrics.read(accelerator)
