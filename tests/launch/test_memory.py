"""The per-device memory estimate: exact state sizes per strategy, and the activation formula."""

from __future__ import annotations

import pytest
from accelerate import Accelerator
from helpers import REPO

from hfgpt.launch.memory import GB, estimate_memory, strategy_of

SHAPE = {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "vocab_size": 100, "micro_batch": 2, "seq_len": 8}


def estimate(strategy="single", world_size=1, precision="fp32", **kwargs):
    return estimate_memory(n_params=1000, **{**SHAPE, **kwargs}, precision=precision, strategy=strategy,
                           world_size=world_size)


def test_state_sizes_single_process_fp32():
    e = estimate()
    assert (e.params, e.grads, e.optimizer) == (4000, 4000, 8000)  # fp32 weights, grads, two Adam moments
    per_layer = 8 * 2 * 64 * 34 * 2  # s*b*h*34 bytes at 16 bits, doubled for fp32
    assert e.activations == 2 * per_layer + 2 * 2 * 8 * 100 * 4
    assert e.total == e.params + e.grads + e.optimizer + e.activations


def test_zero_stages_shard_more_and_more():
    ddp, z1, z2, z3 = (estimate(s, world_size=4, precision="bf16") for s in ("ddp", "zero1", "zero2", "zero3"))
    assert (ddp.params, ddp.grads, ddp.optimizer) == (4000, 4000, 8000)  # autocast keeps fp32 weights
    assert (z1.params, z1.grads, z1.optimizer) == (2000, 2000, 12000 / 4)  # bf16 weights + fp32 master in Adam
    assert (z2.params, z2.grads, z2.optimizer) == (2000, 500, 3000)
    assert (z3.params, z3.grads, z3.optimizer) == (500, 500, 3000)
    assert estimate("fsdp", world_size=4).params == 1000
    fp32 = estimate("zero2", world_size=4)  # ZeRO keeps its own fp32 copy of the partition even in fp32
    assert (fp32.params, fp32.grads, fp32.optimizer) == (4000, 1000, 12000 / 4)


def test_offload_and_checkpointing_free_device_memory():
    offloaded = estimate_memory(n_params=1000, **SHAPE, precision="bf16", strategy="zero3", world_size=2,
                                offload_optimizer=True, offload_params=True)
    assert offloaded.optimizer == offloaded.params == 0 and "offloaded to CPU" in offloaded.format()
    assert estimate(gradient_checkpointing=True).activations < estimate().activations


SEVEN_B = {"hidden_size": 4096, "num_layers": 32, "num_heads": 32, "vocab_size": 32000, "micro_batch": 1,
           "seq_len": 2048, "gradient_checkpointing": True}


def estimate_7b(strategy):
    """A 7B model in bf16, context 2048, gradient checkpointing, on 8 devices: docs/scaling.md's example."""
    return estimate_memory(7_000_000_000, **SEVEN_B, precision="bf16", strategy=strategy, world_size=8)


def test_a_7b_model_fits_80gb_under_zero3_on_8_devices_but_not_ddp():
    ddp, zero3 = estimate_7b("ddp"), estimate_7b("zero3")
    assert ddp.total > 80 * GB > zero3.total, (ddp.format(), zero3.format())


def test_the_documented_figures_are_the_estimate():
    docs = " ".join((REPO / "docs" / "scaling.md").read_text().split())  # its lines wrap inside the quoted output
    zero3 = estimate_7b("zero3").format()
    assert zero3 == ("memory per device (zero3, 8 process(es)): params 1.63 GB + grads 1.63 GB + optimizer "
                     "9.78 GB + activations 1.25 GB = 14.29 GB (estimate)")
    assert f"`{zero3}`, where DDP would need {estimate_7b('ddp').total / GB:.2f} GB" in docs
    assert "where DDP would need 105.56 GB" in docs


def test_strategy_of_a_single_cpu_process():
    assert strategy_of(Accelerator(cpu=True)) == ("single", False, False)


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="strategy must be one of"):
        estimate("tensor-parallel")
