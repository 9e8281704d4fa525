"""Device, precision, CPU threads and the process group: what a launch gets on a machine without CUDA."""

from __future__ import annotations

import os

import pytest
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType

from hfgpt.config import TrainConfig
from hfgpt.launch.memory import strategy_of
from hfgpt.launch.processes import choose_device_and_precision, cpu_threads, start_processes, using_deepspeed

without_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks what a machine without CUDA does")


def config(**training) -> TrainConfig:
    cfg = TrainConfig()
    for key, value in training.items():
        setattr(cfg.training, key, value)
    return cfg


@without_cuda
def test_cuda_asked_for_without_cuda_warns_and_trains_on_the_cpu():
    with pytest.warns(UserWarning, match="--device cuda was asked for but CUDA is not available"):
        assert choose_device_and_precision(config(device="cuda")) == (True, "no")


@without_cuda
def test_fp16_on_the_cpu_falls_back_to_fp32_and_bf16_stays():
    with pytest.warns(UserWarning, match="--precision fp16 needs CUDA"):
        assert choose_device_and_precision(config(precision="fp16")) == (True, "no")
    assert choose_device_and_precision(config(precision="bf16")) == (True, "bf16")


def test_cpu_threads_share_the_cores_unless_asked(monkeypatch):
    cores = os.cpu_count()
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert cpu_threads(0, num_processes=1) == cores
    assert cpu_threads(3, num_processes=1) == 3
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(2 * cores))
    assert cpu_threads(0, num_processes=4) == 1


@without_cuda
def test_fsdp_without_cuda_says_it_trains_as_ddp(monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.warns(UserWarning, match="FSDP needs CUDA GPUs"):
        state = start_processes(use_cpu=True)
    assert state.distributed_type != DistributedType.FSDP
    accelerator = Accelerator(cpu=True)  # as the trainer builds it
    layer = torch.nn.Linear(2, 2)
    assert accelerator.prepare(layer) is layer, "the model is not sharded"
    assert strategy_of(accelerator) == ("single", False, False), "nor is its memory estimated as sharded"


def test_deepspeed_is_read_from_accelerate_launch(monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    assert using_deepspeed()
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED")
    assert not using_deepspeed()
