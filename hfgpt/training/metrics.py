"""Loss, perplexity and next-token accuracy, summed on the device and read with one host sync."""

from __future__ import annotations

import math

import torch
from accelerate import Accelerator

from ..data.batches import IGNORE_INDEX


class TokenMetrics:
    """Token-weighted sums of loss and correct predictions since the last `read`.

    Adding never synchronises with the host, so a GPU is not held back between logging steps.
    """

    def __init__(self, device: torch.device):
        self.sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss x tokens, correct, tokens

    @staticmethod
    @torch.no_grad()
    def measure(logits: torch.Tensor, labels: torch.Tensor, mean_loss: torch.Tensor) -> torch.Tensor:
        """The sums of one micro-batch, to `add` once its step is known to count."""
        targets = labels[:, 1:]  # (B, T-1): the model predicts token t+1 at position t
        counted = targets != IGNORE_INDEX
        tokens = counted.sum()
        correct = ((logits[:, :-1].argmax(dim=-1) == targets) & counted).sum()
        return torch.stack([mean_loss.detach().double() * tokens, correct.double(), tokens.double()])

    def add(self, sums: torch.Tensor) -> None:
        self.sums += sums

    def snapshot(self, accelerator: Accelerator) -> list[float]:
        """The sums over all processes since the last `read`, for a checkpoint; they keep counting."""
        return accelerator.reduce(self.sums.clone(), reduction="sum").tolist()

    def restore(self, sums: list[float], accelerator: Accelerator) -> None:
        """Resume a window from `snapshot`: the main process holds the saved totals, the others none."""
        if accelerator.is_main_process:
            self.sums = torch.tensor(sums, dtype=torch.float64, device=self.sums.device)

    def read(self, accelerator: Accelerator) -> dict[str, float]:
        """Sum over all processes, reset, and return loss, perplexity and accuracy; {} if nothing was added."""
        return self.summarize(self.read_sums(accelerator))

    def read_sums(self, accelerator: Accelerator) -> list[float]:
        """The sums over all processes (loss x tokens, correct, tokens), reset."""
        sums = accelerator.reduce(self.sums, reduction="sum").tolist()
        self.sums.zero_()
        return sums

    @staticmethod
    def summarize(sums: list[float]) -> dict[str, float]:
        """Loss, perplexity and accuracy of summed metrics; {} if they count no token."""
        loss_sum, correct, tokens = sums
        if not tokens:
            return {}
        loss = loss_sum / tokens
        return {"loss": loss, "ppl": math.exp(min(loss, 700.0)), "acc": correct / tokens}
