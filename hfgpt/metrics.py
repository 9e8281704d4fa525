"""Loss, perplexity and next-token accuracy, summed on the device and read with one host sync."""

from __future__ import annotations

import math

import torch
from accelerate import Accelerator


class TokenMetrics:
    """Token-weighted sums of loss and correct predictions since the last `read`.

    Adding never synchronises with the host, so a GPU is not held back between logging steps.
    """

    def __init__(self, device: torch.device):
        self.sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss x tokens, correct, tokens

    @torch.no_grad()
    def add(self, logits: torch.Tensor, labels: torch.Tensor, mean_loss: torch.Tensor) -> None:
        targets = labels[:, 1:]  # (B, T-1): the model predicts token t+1 at position t
        counted = targets != -100
        tokens = counted.sum()
        correct = ((logits[:, :-1].argmax(dim=-1) == targets) & counted).sum()
        self.sums += torch.stack([mean_loss.detach().double() * tokens, correct.double(), tokens.double()])

    def read(self, accelerator: Accelerator) -> dict[str, float]:
        """Sum over all processes, reset, and return loss, perplexity and accuracy."""
        loss_sum, correct, tokens = accelerator.reduce(self.sums, reduction="sum").tolist()
        self.sums.zero_()
        loss = loss_sum / max(tokens, 1.0)
        return {"loss": loss, "ppl": math.exp(min(loss, 700.0)), "acc": correct / max(tokens, 1.0)}
