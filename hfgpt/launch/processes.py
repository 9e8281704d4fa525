"""Which device, precision and process group a launch trains with, and the DeepSpeed plumbing around them.

accelerate picks most of this from `accelerate launch`; what is here covers the gaps: a CPU-only machine
asked for CUDA or fp16, CPU threads for several local processes, mpirun/srun launches, DeepSpeed on gloo,
and ZeRO-3's sharded weights.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator, PartialState
from accelerate.state import AcceleratorState
from accelerate.utils import DistributedType

from ..config import TrainConfig
from ..data.batches import BatchLayout
from .launchers import adopt_launcher_environment
from .memory import strategy_of
from .orphans import stop_with_launcher


def choose_device_and_precision(cfg: TrainConfig) -> tuple[bool, str]:
    """(use_cpu, precision: fp32, fp16 or bf16): `auto` resolved for this machine, and what it cannot do
    downgraded with a warning."""
    training = cfg.training
    use_cpu = training.device == "cpu" or not torch.cuda.is_available()
    if training.device == "cuda" and not torch.cuda.is_available():
        warnings.warn("--device cuda was asked for but CUDA is not available here: training on the CPU.",
                      stacklevel=2)
    precision = auto_precision(training.precision, use_cpu)
    if precision == "fp16" and use_cpu:
        warnings.warn("--precision fp16 needs CUDA (accelerate would silently ignore it on the CPU): "
                      "training in fp32; use --precision bf16 for mixed precision on the CPU.", stacklevel=2)
        precision = "fp32"
    return use_cpu, precision


def auto_precision(asked: str, use_cpu: bool) -> str:
    """`asked`, with `auto` resolved: bf16 where the hardware computes it natively, else fp32."""
    if asked != "auto":
        return asked
    return "bf16" if native_bf16(use_cpu) else "fp32"


def attention_kernel(asked: str, use_cpu: bool, precision: str) -> str:
    """The attention implementation for `auto`: sdpa, but eager on a CPU in bf16. Measured with torch 2.13 on a
    2-core AMX CPU: sdpa forward + backward at (12, 4, 64, 32) takes 5.6 ms in bf16 against 1.1 ms in fp32,
    which made bf16 training of the baby GPT slower than fp32 (57 vs 47 ms/step); with eager, 36 ms/step."""
    if asked != "auto":
        return asked
    return "eager" if use_cpu and precision == "bf16" else "sdpa"


def native_bf16(use_cpu: bool) -> bool:
    """Whether this machine computes bf16 in hardware: a CUDA GPU that supports it, or a CPU with AVX512-BF16
    or AMX (read from /proc/cpuinfo; elsewhere, whether oneDNN says it has a bf16 path)."""
    if not use_cpu:
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        mkldnn = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
        return bool(mkldnn and mkldnn())
    return "avx512_bf16" in flags or "amx_bf16" in flags


def new_accelerator(**settings: Any) -> Accelerator:
    """An Accelerator with `settings`, whatever an earlier one in this process set (a notebook, a test, `hfgpt
    eval` after a run): accelerate keeps precision and accumulation process-wide. The process group stays."""
    AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(**settings)


def available_cores() -> int:
    """The cores this process may run on: its CPU affinity (Slurm's --cpus-per-task, taskset, a container's
    cpuset), where the system keeps one; else every core of the machine."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def cpu_threads(requested: int, num_processes: int) -> int:
    """Threads for each CPU process: `accelerate launch` sets OMP_NUM_THREADS=1 for a lone CPU process,
    which leaves all but one core idle, so unless asked otherwise share the cores it may use among local
    processes (a thread per core of the machine on a job given a few of them would crowd each core)."""
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", num_processes))
    return requested or max(1, available_cores() // local_processes)


def using_deepspeed() -> bool:
    """Whether `accelerate launch` was told to use DeepSpeed (--use_deepspeed or a DeepSpeed config)."""
    return os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true"


def using_fsdp() -> bool:
    """Whether `accelerate launch` was told to use FSDP (--use_fsdp or an FSDP config)."""
    return os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true"


ENGINE_NAMES = {"deepspeed": "DeepSpeed", "fsdp": "FSDP"}  # launched_engine()'s values, as messages name them


def launched_engine() -> str:
    """"deepspeed" or "fsdp" when `accelerate launch` wraps the model in one, else ""."""
    return "deepspeed" if using_deepspeed() else "fsdp" if using_fsdp() else ""


def start_processes(use_cpu: bool) -> PartialState:
    """The process group. DeepSpeed and FSDP without CUDA need gloo named up front, or accelerate sees one process
    (DeepSpeed) or no FSDP (FSDP)."""
    adopt_launcher_environment()  # started by mpirun or srun: speak torch.distributed's variables
    stop_with_launcher()  # a launcher that dies sends its workers a SIGTERM (hfgpt.launch.orphans)
    if using_deepspeed() and not torch.cuda.is_available():
        return PartialState(backend="gloo")
    if using_fsdp() and not torch.cuda.is_available() and "WORLD_SIZE" in os.environ:  # a launcher's group
        return _fsdp_on_cpus()
    return PartialState(cpu=use_cpu)


def _fsdp_on_cpus() -> PartialState:
    """FSDP over gloo on CPU processes. accelerate turns FSDP on only for process groups of accelerators, but FSDP2
    shards, gathers and checkpoints (torch.distributed.checkpoint) on a CPU mesh as well: the group is started on
    gloo and accelerate is told it is a multi-device one, so that its FSDP plugin wraps the model as on GPUs."""
    state = PartialState(backend="gloo")
    if state.distributed_type in (DistributedType.NO, DistributedType.MULTI_CPU):
        state.distributed_type = DistributedType.MULTI_GPU  # read once, when the Accelerator picks its plugin
    return state


def configure_deepspeed(accelerator: Accelerator, layout: BatchLayout, cfg: TrainConfig) -> None:
    """hfgpt reads its own batches (no prepared dataloader), so DeepSpeed learns the batch shape from here."""
    plugin = accelerator.state.deepspeed_plugin
    if plugin is None:
        return
    plugin.deepspeed_config.update(
        train_micro_batch_size_per_gpu=layout.micro_batch, gradient_accumulation_steps=layout.grad_accum_steps,
        train_batch_size=layout.global_batch, gradient_clipping=cfg.training.max_grad_norm)


def whole_parameters(accelerator: Accelerator, model: torch.nn.Module) -> contextlib.AbstractContextManager:
    """ZeRO-3 keeps each process's shard of the weights only; gather them all for generation."""
    if strategy_of(accelerator)[0] != "zero3":
        return contextlib.nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(list(model.parameters()))


def finish_processes(accelerator: Accelerator) -> None:
    """Close the trackers and the process group, once every process is done with its collectives."""
    accelerator.wait_for_everyone()
    accelerator.end_training()
