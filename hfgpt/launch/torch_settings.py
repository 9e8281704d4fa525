"""The process-wide torch settings a run trains under, put back as they were when the run ends.

torch keeps CPU threads, deterministic algorithms, float32 matmul precision and dynamo's error policy per
process, not per model. A program or notebook that calls `hfgpt.train` goes on afterwards with its own: not
one thread because the run asked for one, and not deterministic algorithms that refuse ops it uses later.

A run on the CPU always uses torch's deterministic algorithms, so that the same run computes the same bits every
time: compiled code (inductor's C++ backend) otherwise adds the gradients of an embedding by atomic adds from
several threads (`atomic_add_vec` in the generated kernel), in whichever order the threads arrive, and a
compiled run on 2 threads came out different in all of its tensors from one run to the next. Under
`torch.use_deterministic_algorithms` inductor calls aten's deterministic `index_put_` instead. On a GPU they
cost speed, so there they are `--deterministic`'s choice.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
import torch._dynamo

from ..config.schema import TrainingSection
from .processes import cpu_threads


def uses_deterministic_algorithms(training: TrainingSection, use_cpu: bool) -> bool:
    """Whether the run uses deterministic algorithms: always on the CPU, on a GPU with `--deterministic`."""
    return use_cpu or training.deterministic


@contextlib.contextmanager
def run_torch_settings(training: TrainingSection, use_cpu: bool, num_processes: int) -> Iterator[None]:
    """Threads shared among the local CPU processes, TF32 matmuls on a GPU, deterministic algorithms on the CPU
    (and on a GPU if asked for), and a model that fails to compile run eagerly (dynamo's `suppress_errors`),
    for the body only."""
    before = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled(), torch.get_float32_matmul_precision())
    try:
        with torch._dynamo.config.patch(suppress_errors=True):
            if use_cpu:
                torch.set_num_threads(cpu_threads(training.cpu_threads, num_processes))
            else:
                torch.set_float32_matmul_precision("high")  # TF32 matmuls on GPUs that have them
            if uses_deterministic_algorithms(training, use_cpu):
                if not use_cpu:
                    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
                torch.use_deterministic_algorithms(True)
            yield
    finally:
        threads, deterministic, warn_only, matmul_precision = before
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        torch.set_float32_matmul_precision(matmul_precision)
