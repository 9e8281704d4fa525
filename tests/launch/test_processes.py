"""Device, precision, CPU threads and the process group: what a launch gets on a machine without CUDA."""

from __future__ import annotations

import os

import pytest
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType

import hfgpt.launch.processes
from hfgpt.config import TrainConfig
from hfgpt.launch.memory import strategy_of
from hfgpt.launch.processes import (
    available_cores,
    choose_device_and_precision,
    cpu_threads,
    start_processes,
    using_deepspeed,
)

without_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks what a machine without CUDA does")


def config(**training) -> TrainConfig:
    cfg = TrainConfig()
    for key, value in training.items():
        setattr(cfg.training, key, value)
    return cfg


@without_cuda
def test_cuda_asked_for_without_cuda_warns_and_trains_on_the_cpu():
    with pytest.warns(UserWarning, match="--device cuda was asked for but CUDA is not available"):
        assert choose_device_and_precision(config(device="cuda", precision="fp32")) == (True, "fp32")


@without_cuda
def test_fp16_on_the_cpu_falls_back_to_fp32_and_bf16_stays():
    with pytest.warns(UserWarning, match="--precision fp16 needs CUDA"):
        assert choose_device_and_precision(config(precision="fp16")) == (True, "fp32")
    assert choose_device_and_precision(config(precision="bf16")) == (True, "bf16")


@without_cuda
@pytest.mark.parametrize(("cpuinfo", "expected"), [
    ("flags : fpu avx2 avx512f avx512_bf16 amx_tile", "bf16"), ("flags : fpu avx2 amx_bf16", "bf16"),
    ("flags : fpu avx2 avx512f", "fp32"),
])
def test_auto_precision_is_bf16_where_the_cpu_computes_it_natively(monkeypatch, cpuinfo, expected):
    real_read_text = hfgpt.launch.processes.Path.read_text

    def read_text(path, *args, **kwargs):
        return cpuinfo if str(path) == "/proc/cpuinfo" else real_read_text(path, *args, **kwargs)

    monkeypatch.setattr(hfgpt.launch.processes.Path, "read_text", read_text)
    assert choose_device_and_precision(config(precision="auto")) == (True, expected)
    assert choose_device_and_precision(config(precision="fp32")) == (True, "fp32")  # asked for: as asked


def test_cpu_threads_share_the_cores_unless_asked(monkeypatch):
    cores = len(os.sched_getaffinity(0))
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert cpu_threads(0, num_processes=1) == cores
    assert cpu_threads(3, num_processes=1) == 3
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(2 * cores))
    assert cpu_threads(0, num_processes=4) == 1


def test_cpu_threads_count_only_the_cores_the_process_may_use():
    """A Slurm job given 1 core of a bigger machine (its cpuset), here as `taskset` would: one thread, not one per
    core of the machine crowding that core."""
    everything = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {min(everything)})
        assert available_cores() == 1 and cpu_threads(0, num_processes=1) == 1
    finally:
        os.sched_setaffinity(0, everything)


@without_cuda
def test_fsdp_asked_for_without_a_process_group_trains_one_plain_process(monkeypatch):
    """FSDP on CPU processes needs the group `accelerate launch` starts (the sharded runs: test_distributed.py); a
    script run directly with FSDP's variable set stays one plain process instead of failing to shard."""
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    state = start_processes(use_cpu=True)
    assert state.distributed_type == DistributedType.NO
    accelerator = Accelerator(cpu=True)  # as the trainer builds it
    layer = torch.nn.Linear(2, 2)
    assert accelerator.prepare(layer) is layer, "the model is not sharded"
    assert strategy_of(accelerator) == ("single", False, False), "nor is its memory estimated as sharded"


def test_deepspeed_is_read_from_accelerate_launch(monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    assert using_deepspeed()
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED")
    assert not using_deepspeed()
