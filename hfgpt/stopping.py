"""When a run stops before `max_steps`: a signal, early stopping, or too many bad steps.

Every stop decision is taken by all processes together, from numbers they share after a
collective, so no rank stops (or writes) alone and none waits forever for the others.
"""

from __future__ import annotations

import signal
from dataclasses import asdict, dataclass
from typing import Any

import torch
from accelerate import Accelerator


class StopSignals:
    """SIGTERM and SIGINT (preemption, Ctrl-C) ask the loop to stop after the current step.

    The handler only sets a flag; the loop checks it once per step. A second SIGINT stops at once.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.received = 0  # the signal number, 0 for none
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signum

    def __enter__(self) -> StopSignals:
        for signum in self.SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def step_flags(accelerator: Accelerator, loss_sum: torch.Tensor, grad_norm: torch.Tensor | None,
               signalled: int) -> tuple[bool, str]:
    """(non-finite step on any process, name of a stop signal any process received or "") as agreed by
    every process: one all-reduce, one host sync."""
    bad = ~torch.isfinite(loss_sum.detach().float())
    if grad_norm is not None:
        bad |= ~torch.isfinite(torch.as_tensor(grad_norm, device=loss_sum.device).float())
    flags = torch.stack([bad.float(), torch.tensor(float(signalled), device=loss_sum.device)])
    nonfinite, signum = accelerator.reduce(flags, reduction="max").tolist()
    return nonfinite > 0, signal.Signals(int(signum)).name if signum else ""


@dataclass
class Progress:
    """What the loop carries from step to step beyond the model and optimizer; saved in checkpoints."""

    best_loss: float = float("inf")
    best_step: int = 0
    evals_without_improvement: int = 0
    bad_steps_in_a_row: int = 0
    skipped_steps: int = 0

    def observe_eval(self, loss: float, step: int, min_delta: float) -> bool:
        """Record a validation loss; True when it improves on the best by at least `min_delta`."""
        if loss < self.best_loss - min_delta:
            self.best_loss, self.best_step, self.evals_without_improvement = loss, step, 0
            return True
        self.evals_without_improvement += 1
        return False

    def observe_step(self, nonfinite: bool) -> None:
        self.bad_steps_in_a_row = self.bad_steps_in_a_row + 1 if nonfinite else 0
        self.skipped_steps += int(nonfinite)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "best_loss": None if self.best_loss == float("inf") else self.best_loss}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Progress:
        fields = {k: data[k] for k in asdict(cls()) if k in data}
        if fields.get("best_loss") is None:
            fields["best_loss"] = float("inf")
        return cls(**fields)
