"""--compile: a compiled run trains with accumulation and gradient checkpointing, evaluates and samples without
compiling again, saves plain parameter names, and a compiled run continued ends bitwise equal to an
uninterrupted compiled run."""

from __future__ import annotations

import pytest
import torch
from helpers import read_log, tiny_run_flags, untimed_log
from safetensors.torch import load_file

from hfgpt.training.modes import continue_setup, train_setup
from hfgpt.training.trainer import run

pytestmark = pytest.mark.slow  # compiling takes tens of seconds on a CPU

FLAGS = ["--compile", "--max-steps", "6", "--eval-every", "2", "--ckpt-every", "3", "--batch", "4",
         "--grad-accum-steps", "2", "--gradient-checkpointing", "--dropout", "0.1", "--sample-tokens", "8",
         "--deterministic", "--cpu-threads", "1"]


def compiled_run(tmp_path, name: str, *extra: str):
    torch._dynamo.reset()  # each run compiles its own model; within a run nothing may compile twice
    return run(train_setup(tiny_run_flags(tmp_path, name, *FLAGS, *extra)))


def test_a_compiled_run_continues_bitwise_and_never_compiles_twice(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch._dynamo.config, "error_on_recompile", True)  # eval, the last batch, sampling
    whole = compiled_run(tmp_path, "whole")
    assert "compiled the model in" in capsys.readouterr().out
    stopped = compiled_run(tmp_path, "stopped", "--stop-at-step", "3")
    torch._dynamo.reset()
    run(continue_setup([str(stopped)]))
    assert untimed_log(stopped) == untimed_log(whole)
    saved, reference = load_file(stopped / "final" / "model.safetensors"), load_file(whole / "final" /
                                                                                      "model.safetensors")
    assert not [name for name in saved if "_orig_mod" in name] and saved.keys() == reference.keys()
    assert all(saved[name].equal(reference[name]) for name in saved)
    assert [r["step"] for r in read_log(whole) if r["split"] == "valid"] == [2, 4, 6]
