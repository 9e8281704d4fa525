"""run_torch_settings: a run's CPU threads, deterministic algorithms, matmul precision and dynamo's error policy
hold for the run only, and the process that called it gets its own back, also after a run that fails."""

from __future__ import annotations

import pytest
import torch
import torch._dynamo
from helpers import tiny_run_flags

from hfgpt.config.schema import TrainingSection
from hfgpt.launch.torch_settings import run_torch_settings, uses_deterministic_algorithms
from hfgpt.training.modes import train_setup
from hfgpt.training.trainer import run


@pytest.fixture
def callers_settings():
    """Settings no run here would choose (3 threads, warn-only deterministic algorithms, medium precision),
    so that a setting that is not put back shows; the test's process gets its defaults back afterwards."""
    defaults = (torch.get_num_threads(), torch.get_float32_matmul_precision())
    torch.set_num_threads(3)
    torch.use_deterministic_algorithms(False, warn_only=True)
    torch.set_float32_matmul_precision("medium")
    yield (3, False, True, "medium", False)
    torch.set_num_threads(defaults[0])
    torch.use_deterministic_algorithms(False)
    torch.set_float32_matmul_precision(defaults[1])


def current_settings() -> tuple:
    return (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(), torch.get_float32_matmul_precision(),
            torch._dynamo.config.suppress_errors)


@pytest.mark.parametrize(("use_cpu", "inside"), [(True, (1, True, False, "medium", True)),
                                                 (False, (3, True, False, "high", True))])
def test_a_runs_settings_hold_inside_and_the_callers_come_back(callers_settings, use_cpu, inside):
    training = TrainingSection(cpu_threads=1, deterministic=True)
    with run_torch_settings(training, use_cpu, num_processes=1):
        assert current_settings() == inside
    assert current_settings() == callers_settings


@pytest.mark.parametrize(("use_cpu", "asked", "deterministic"), [(True, False, True), (True, True, True),
                                                                  (False, False, False), (False, True, True)])
def test_a_cpu_run_always_uses_deterministic_algorithms_and_a_gpu_run_when_asked(callers_settings, use_cpu, asked,
                                                                                 deterministic):
    # compiled code on the CPU sums an embedding's gradients by atomic adds from several threads unless they are on
    with run_torch_settings(TrainingSection(cpu_threads=1, deterministic=asked), use_cpu, num_processes=1):
        assert torch.are_deterministic_algorithms_enabled() == deterministic
    assert uses_deterministic_algorithms(TrainingSection(deterministic=asked), use_cpu) == deterministic


def test_the_callers_settings_come_back_after_a_run_that_fails(callers_settings):
    with pytest.raises(RuntimeError, match="the run failed"), \
            run_torch_settings(TrainingSection(cpu_threads=1, deterministic=True), True, num_processes=1):
        raise RuntimeError("the run failed")
    assert current_settings() == callers_settings


def test_a_run_in_this_process_leaves_the_callers_settings_as_they_were(callers_settings, tmp_path):
    run(train_setup(tiny_run_flags(tmp_path, "run", "--max-steps", "2", "--deterministic", "--cpu-threads", "1")))
    assert current_settings() == callers_settings
