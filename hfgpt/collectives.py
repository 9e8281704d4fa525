"""Decisions that every process takes together, so that none stops, raises or writes alone and none waits
forever for the others. Each function here is a collective: every process must call it."""

from __future__ import annotations

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


def agree_step_flags(accelerator: Accelerator, loss_sum: torch.Tensor, grad_norm: torch.Tensor | None,
                     signalled: int) -> torch.Tensor:
    """[1 if any process had a non-finite loss or gradient, the highest stop signal number any process received]
    on every process, as a device tensor: one all-reduce and no host sync (reading it is the caller's)."""
    bad = ~torch.isfinite(loss_sum.detach().float())
    if grad_norm is not None:
        bad |= ~torch.isfinite(torch.as_tensor(grad_norm, device=loss_sum.device).float())
    flags = torch.stack([bad.float(), torch.full((), float(signalled), device=loss_sum.device)])
    return accelerator.reduce(flags, reduction="max")
