"""MFU: FLOPs per token by the PaLM/nanoGPT estimate, the peak of the device, and their ratio."""

from __future__ import annotations

import pytest
import torch

import hfgpt.training.mfu
from hfgpt.models.hfgpt import HfGptConfig, HfGptForCausalLM
from hfgpt.training.mfu import flops_per_token, mfu, peak_tflops


def test_flops_per_token_is_6n_plus_12ltd_without_the_position_table_and_with_a_tied_head_once():
    config = HfGptConfig(vocab_size=65, hidden_size=128, num_hidden_layers=4, num_attention_heads=4,
                         max_position_embeddings=64)
    model = HfGptForCausalLM(config)
    # per block: qkv 3d^2 + proj d^2 + mlp 8d^2 weights, 2 LayerNorms (2d each, no bias); then wte and ln_f
    d, layers = 128, 4
    n = layers * (12 * d * d + 2 * d) + 65 * d + d
    assert flops_per_token(model, seq_len=64) == 6 * n + 12 * layers * 64 * d
    untied = HfGptForCausalLM(HfGptConfig(**{**config.to_dict(), "tie_word_embeddings": False}))
    assert flops_per_token(untied, seq_len=64) == 6 * (n + 65 * d) + 12 * layers * 64 * d


def test_the_peak_of_a_known_gpu_comes_from_the_table(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "NVIDIA H100 80GB HBM3")
    cuda = torch.device("cuda", 0)
    assert peak_tflops(cuda, "bf16") == 989.0 and peak_tflops(cuda, "fp32") == 494.5
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "Some Future GPU")
    assert peak_tflops(cuda, "bf16") == 0.0
    assert peak_tflops(cuda, "bf16", asked=700.0) == 700.0


def test_a_cpu_peak_is_measured_at_the_training_precision(monkeypatch):
    measured = []
    monkeypatch.setattr(hfgpt.training.mfu, "_measured_cpu_peak", lambda dtype: measured.append(dtype) or 1.5)
    assert peak_tflops(torch.device("cpu"), "bf16") == 1.5 and measured == [torch.bfloat16]
    assert peak_tflops(torch.device("cpu"), "fp32") == 1.5 and measured[-1] == torch.float32


def test_a_real_cpu_probe_gives_a_plausible_figure():
    assert 0.001 < hfgpt.training.mfu._measured_cpu_peak(torch.float32, size=256, seconds=0.05) < 100


def test_mfu_is_achieved_over_peak_for_all_devices():
    assert mfu(tokens_per_s=1000.0, per_token=1e9, peak=1.0, devices=2) == pytest.approx(0.5)
    assert mfu(tokens_per_s=1000.0, per_token=1e9, peak=0.0, devices=1) == 0.0


def test_the_cpu_probe_leaves_the_random_stream_alone():
    # the loop measures the peak after `continue` restored the RNG: drawing from it would change the run
    torch.manual_seed(3)
    before = torch.get_rng_state()
    hfgpt.training.mfu._measured_cpu_peak(torch.float32, size=64, seconds=0.01)
    assert torch.equal(torch.get_rng_state(), before)
