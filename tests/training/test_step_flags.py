"""Reading the agreed step flags: every-step decides the update on the host before it; lagged lets fused AdamW
skip it on the device and hands the flags over a step later, or at once when asked; `auto` picks lagged only
where the device can skip."""

from __future__ import annotations

import signal

import pytest
import torch

from hfgpt.errors import HfGptError
from hfgpt.training.step_flags import EVERY_STEP, LAGGED, StepFlags, StepOutcome, step_sync

FINE, NON_FINITE = torch.tensor([0.0, 0.0]), torch.tensor([1.0, 0.0])


def fused_adamw() -> tuple[torch.nn.Parameter, torch.optim.AdamW]:
    weight = torch.nn.Parameter(torch.ones(3))
    return weight, torch.optim.AdamW([weight], lr=0.1, fused=True)


def step(flags: StepFlags, optimizer: torch.optim.AdamW, weight: torch.nn.Parameter, number: int,
         agreed: torch.Tensor) -> None:
    weight.grad = torch.full_like(weight, float("nan") if agreed[0] else 1.0)
    flags.update(optimizer, number, agreed)
    optimizer.zero_grad(set_to_none=True)


@pytest.mark.parametrize("mode", [EVERY_STEP, LAGGED])
def test_a_non_finite_step_leaves_weights_and_optimizer_state_untouched(mode):
    weight, optimizer = fused_adamw()
    flags = StepFlags(mode)
    step(flags, optimizer, weight, 1, FINE)
    after_one = weight.detach().clone(), {k: v.clone() for k, v in optimizer.state[weight].items()}
    step(flags, optimizer, weight, 2, NON_FINITE)
    assert torch.equal(weight, after_one[0]) and torch.isfinite(weight).all()
    assert all(torch.equal(optimizer.state[weight][k], v) for k, v in after_one[1].items()), \
        "the skipped step moved the moments or the step count"
    step(flags, optimizer, weight, 3, FINE)
    assert optimizer.state[weight]["step"].item() == 2 and not torch.equal(weight, after_one[0])
    assert [o.nonfinite for o in flags.settle(3, now=True)] == [False, True, False]


def test_lagged_flags_come_a_step_later_unless_asked_for_now():
    weight, optimizer = fused_adamw()
    flags = StepFlags(LAGGED)
    step(flags, optimizer, weight, 1, torch.tensor([1.0, 0.0]))
    assert flags.settle(1) == [], "step 1's flags wait while step 1 may still run"
    step(flags, optimizer, weight, 2, torch.tensor([0.0, float(signal.SIGTERM)]))
    assert flags.settle(2) == [StepOutcome(1, True, 0)]
    assert flags.settle(2, now=True) == [StepOutcome(2, False, signal.SIGTERM)]
    assert flags.settle(3, now=True) == [], "each outcome is handed over once"


def test_every_step_flags_are_read_before_the_update():
    weight, optimizer = fused_adamw()
    flags = StepFlags(EVERY_STEP)
    step(flags, optimizer, weight, 1, NON_FINITE)
    assert not hasattr(optimizer, "found_inf"), "the host decided: the optimizer was not called"
    assert flags.settle(1) == [StepOutcome(1, True, 0)]


@pytest.mark.parametrize(("device", "kernel", "precision", "engine", "auto"), [
    ("cuda", "fused", "bf16", "", LAGGED),
    ("cuda", "fused", "fp32", "", LAGGED),
    ("cpu", "fused", "bf16", "", EVERY_STEP),  # nothing to overlap: the CPU computes as the host asks
    ("cuda", "foreach", "bf16", "", EVERY_STEP),
    ("cuda", "fused", "fp16", "", EVERY_STEP),
    ("cuda", "foreach", "fp32", "deepspeed", EVERY_STEP),
    ("cuda", "fused", "bf16", "fsdp", EVERY_STEP),
])
def test_auto_is_lagged_only_on_a_gpu_whose_optimizer_can_skip_on_the_device(device, kernel, precision, engine,
                                                                               auto):
    assert step_sync("auto", device, kernel, precision, engine) == auto
    assert step_sync(EVERY_STEP, device, kernel, precision, engine) == EVERY_STEP


@pytest.mark.parametrize(("kernel", "precision", "engine", "reason"), [
    ("foreach", "bf16", "", r"needs the fused optimizer kernel \(--optimizer-kernel fused\)"),
    ("fused", "fp16", "", "fp16's loss scaler"),
    ("foreach", "fp32", "deepspeed", "fused"),
    ("fused", "fp32", "deepspeed", "DeepSpeed steps the optimizer"),
    ("fused", "bf16", "fsdp", "FSDP's sharded parameters"),
])
def test_lagged_where_the_device_cannot_skip_is_refused_with_the_reason(kernel, precision, engine, reason):
    with pytest.raises(HfGptError, match=rf"--step-sync lagged cannot be used in this launch: .*{reason}.*"
                                         r"Use --step-sync every-step or auto"):
        step_sync(LAGGED, "cuda", kernel, precision, engine)
    assert step_sync(LAGGED, "cpu", "fused", "bf16") == LAGGED  # allowed, to test it on a CPU


def test_muon_reads_every_step_as_it_has_no_device_skip():
    """Muon (--optimizer muon) has no `found_inf`: auto reads the flags every step even where AdamW would lag, and
    lagged is refused, on a CPU too."""
    assert step_sync("auto", "cuda", "fused", "bf16", "", "muon") == EVERY_STEP
    with pytest.raises(HfGptError, match=r"lagged cannot be used in this launch: Muon \(--optimizer muon\) has no "
                                         "device-side skip"):
        step_sync(LAGGED, "cpu", "fused", "bf16", "", "muon")
