"""Whether each optimizer step counts, and whether the run must stop after it: a non-finite loss or gradient
on any process skips the step's update, a stop signal on any process ends the run. Every process learns both
from one all-reduce per step (`hfgpt.collectives.agree_step_flags`), so all of them skip and stop together.

`every-step` reads a step's flags on the host before its update: the host waits for the device once a step,
which costs nothing on a CPU. `lagged` leaves the skip to the device (fused AdamW's `found_inf`, as GradScaler
uses it; Muon has no such path) and reads step N's flags once step N+1 is queued, or sooner when the loop needs
them (a log record, an evaluation, a checkpoint, the last step), so a GPU never idles between steps. Under `lagged`
a stop signal ends the run one step later, and a skipped step does not hold the learning-rate schedule back (under
`every-step` it does, as for an fp16 overflow).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import HfGptError

EVERY_STEP, LAGGED = "every-step", "lagged"


def step_sync(asked: str, device_type: str, optimizer_kernel: str, precision: str, engine: str = "",
              optimizer: str = "adamw") -> str:
    """`--step-sync` for this launch: `auto` is lagged on a GPU where the device can skip an update itself.
    `engine`: "deepspeed" or "fsdp" when accelerate launches one; `optimizer`: --optimizer."""
    blocker = ("Muon (--optimizer muon) has no device-side skip of an update" if optimizer == "muon" else
               "the device skip needs the fused optimizer kernel (--optimizer-kernel fused)"
               if optimizer_kernel != "fused" else
               "fp16's loss scaler reads every overflow on the host" if precision == "fp16" else
               "DeepSpeed steps the optimizer inside its engine" if engine == "deepspeed" else
               "hfgpt does not give FSDP's sharded parameters a device-side skip" if engine == "fsdp" else "")
    if asked == "auto":
        return LAGGED if device_type == "cuda" and not blocker else EVERY_STEP
    if asked == LAGGED and blocker:
        raise HfGptError(f"--step-sync lagged cannot be used in this launch: {blocker}. Use --step-sync "
                         "every-step or auto.")
    return asked


@dataclass(frozen=True)
class StepOutcome:
    """What the flags of step `step` (1-based) said."""

    step: int
    nonfinite: bool
    signal: int  # the number of a stop signal any process received, 0 for none


class StepFlags:
    """The agreed flags of the steps not yet read on the host, and the update each one allows."""

    def __init__(self, mode: str) -> None:
        self.lagged = mode == LAGGED
        self._unread: list[tuple[int, torch.Tensor, torch.cuda.Event | None]] = []
        self._read: list[StepOutcome] = []

    def update(self, optimizer: torch.optim.Optimizer, step: int, flags: torch.Tensor) -> None:
        """Step `optimizer` unless `flags` (agreed, on the device) say step `step` was non-finite."""
        if self.lagged:
            _torch_optimizer(optimizer).found_inf = flags[0]  # fused AdamW leaves params and state as they were
            optimizer.step()
            self._unread.append((step, *_copy_to_host(flags)))
            return
        outcome = _outcome(step, flags.tolist())
        if not outcome.nonfinite:
            optimizer.step()
        self._read.append(outcome)

    def settle(self, step: int, now: bool = False) -> list[StepOutcome]:
        """The outcomes not yet returned, oldest first: all of them under `every-step` or with `now`; else those of
        the steps before `step`, whose flags are on the host by now."""
        ready = len(self._unread) if now else sum(entry_step < step for entry_step, *_ in self._unread)
        for entry_step, host, done in self._unread[:ready]:
            if done is not None:
                done.synchronize()  # this step's copy only, not the steps queued after it
            self._read.append(_outcome(entry_step, host.tolist()))
        outcomes, self._read, self._unread = self._read, [], self._unread[ready:]
        return outcomes


def _outcome(step: int, flags: list[float]) -> StepOutcome:
    nonfinite, signum = flags
    return StepOutcome(step, nonfinite > 0, int(signum))


def _copy_to_host(flags: torch.Tensor) -> tuple[torch.Tensor, torch.cuda.Event | None]:
    """Start copying `flags` to pinned host memory without waiting; the event marks when the copy is done."""
    if flags.device.type != "cuda":
        return flags, None
    host = torch.empty(flags.shape, dtype=flags.dtype, pin_memory=True)
    host.copy_(flags, non_blocking=True)
    done = torch.cuda.Event()
    done.record()
    return host, done


def _torch_optimizer(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """The torch optimizer inside accelerate's wrapper, where the fused kernel looks for `found_inf`."""
    return getattr(optimizer, "optimizer", optimizer)
