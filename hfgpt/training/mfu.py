"""Model FLOPs utilization: the share of the devices' peak arithmetic that training turns into model FLOPs.

FLOPs per token follow the PaLM paper's appendix B (Chowdhery et al. 2022), as nanoGPT estimates them:
6N for the matrix multiplications of the forward and backward passes over N parameters, plus 12·L·T·d for
attention's score and value products (L layers, context T, width d). N counts every parameter that takes
part in a matrix multiplication: all but the learned position table (a lookup), with a tied output head
counted once, as the embedding matrix it shares. The peak comes from a table of data-centre GPUs (dense,
no sparsity), from `--peak-tflops`, or, on a CPU, from a short matrix-multiplication probe at the training
precision, so that a CPU's MFU says how close training gets to what its matmuls can do.
"""

from __future__ import annotations

import time

import torch

# Dense peak TFLOPS per GPU by name: (bf16 or fp16 tensor cores, tf32). Vendors' data sheets (SXM parts).
GPU_PEAKS = {"H200": (989.0, 494.5), "H100": (989.0, 494.5), "A100": (312.0, 156.0), "L4": (121.0, 60.0)}


def flops_per_token(model: torch.nn.Module, seq_len: int) -> float:
    """6N + 12·L·T·d for the model as configured (see the module docstring for N)."""
    config = model.config
    position_table = getattr(getattr(model, "model", model), "wpe", None)
    skipped = position_table.weight.numel() if position_table is not None else 0
    matmul_params = sum(getattr(p, "ds_numel", p.numel()) for p in model.parameters()) - skipped
    return 6 * matmul_params + 12 * config.num_hidden_layers * seq_len * config.hidden_size


def peak_tflops(device: torch.device, precision: str, asked: float = 0.0) -> float:
    """Peak TFLOPS of one device at the training precision; 0 when it is a GPU hfgpt has no figure for."""
    if asked:
        return asked
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        half, tf32 = next((peaks for model, peaks in GPU_PEAKS.items() if model in name), (0.0, 0.0))
        return half if precision in ("bf16", "fp16") else tf32
    return _measured_cpu_peak(torch.bfloat16 if precision == "bf16" else torch.float32)


def _measured_cpu_peak(dtype: torch.dtype, size: int = 1024, seconds: float = 0.3) -> float:
    """TFLOPS of square matrix products on this CPU with its threads, the best of a few."""
    own = torch.Generator().manual_seed(0)  # never the run's generator: that would shift its random stream
    a, b = (torch.randn(size, size, generator=own).to(dtype) for _ in range(2))
    torch.mm(a, b)  # warm up
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * size**3 / (time.perf_counter() - start) / 1e12)
    return best


def mfu(tokens_per_s: float, per_token: float, peak: float, devices: int) -> float:
    """Achieved model FLOPs over peak, for the run's throughput over all of its devices."""
    return tokens_per_s * per_token / (peak * 1e12 * devices) if peak else 0.0
