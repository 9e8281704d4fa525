"""Decisions that every process takes together, so that none stops, raises or writes alone and none waits
forever for the others. Each function here is a collective: every process must call it."""

from __future__ import annotations

import signal
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list, gather_object


def broadcast_value(value: Any) -> Any:
    """The main process's `value` on every process."""
    holder = [value]
    broadcast_object_list(holder)
    return holder[0]


def first_failure(failure: str) -> str:
    """The first non-empty `failure` of any process, on every process, so that they all raise together."""
    return next((message for message in gather_object([failure]) if message), "")


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
