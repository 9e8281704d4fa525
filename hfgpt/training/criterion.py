"""The training loss: cross-entropy of each next token, averaged over the tokens that are targets.

hfgpt computes it from the logits instead of passing labels to the model, so that a batch with no target at
all (the last block of a packed set may hold a single real token) counts zero tokens and a zero loss, never
the 0/0 = NaN of a plain mean, which would poison a validation result or skip a training step.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from ..data.batches import IGNORE_INDEX


def next_token_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean cross-entropy over the targets, number of targets) of logits (B, T, V) and labels (B, T).

    Position t predicts token t+1, so the labels are shifted inside; logits are upcast to fp32 first.
    """
    targets = labels[:, 1:].reshape(-1)  # (B * (T-1),)
    predictions = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
    total = F.cross_entropy(predictions, targets, ignore_index=IGNORE_INDEX, reduction="sum")
    count = (targets != IGNORE_INDEX).sum()
    return total / count.clamp(min=1), count
