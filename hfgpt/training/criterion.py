"""The training objective (`--criterion`): cross-entropy of each next token, averaged over the tokens that are
targets, optionally with label smoothing and the PaLM z-loss; and the plain cross-entropy that is reported.

hfgpt computes it from the logits instead of passing labels to the model, so that a batch with no target at
all (the last block of a packed set may hold a single real token) counts zero tokens and a zero loss, never
the 0/0 = NaN of a plain mean, which would poison a validation result or skip a training step. The loss that
is logged, evaluated and compared is always the plain cross-entropy, so runs with other objectives compare.

Label smoothing (Szegedy et al. 2016) trains towards `1 - s` on the target and `s / V` everywhere. The z-loss
(Chowdhery et al. 2022, PaLM, section 5) adds `w * log(Z)^2`, Z the softmax normaliser, which keeps the
logits from drifting: PaLM used w = 1e-4.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch.nn import functional as F

from ..data.batches import IGNORE_INDEX


class Loss(NamedTuple):
    objective: torch.Tensor  # what the optimizer minimizes
    cross_entropy: torch.Tensor  # the plain mean cross-entropy over the targets, as reported
    targets: torch.Tensor  # how many positions had a target


def next_token_loss(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0,
                    z_loss: float = 0.0) -> Loss:
    """The loss of logits (B, T, V) against labels (B, T): position t predicts token t+1, so the labels are
    shifted inside; logits are upcast to fp32 first."""
    targets = labels[:, 1:].reshape(-1)  # (B * (T-1),)
    predictions = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
    counted = targets != IGNORE_INDEX
    count = counted.sum()
    per_token = count.clamp(min=1)
    cross_entropy = F.cross_entropy(predictions, targets, ignore_index=IGNORE_INDEX, reduction="sum") / per_token
    objective = cross_entropy
    if label_smoothing:
        objective = F.cross_entropy(predictions, targets, ignore_index=IGNORE_INDEX, reduction="sum",
                                    label_smoothing=label_smoothing) / per_token
    if z_loss:
        log_z = torch.logsumexp(predictions, dim=-1)  # (B * (T-1),)
        objective = objective + z_loss * (log_z.square() * counted).sum() / per_token
    return Loss(objective, cross_entropy, count)
