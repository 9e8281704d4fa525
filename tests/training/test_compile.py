"""--compile: a compiled run trains with accumulation and gradient checkpointing, evaluates and samples without
compiling again, saves plain parameter names, and a compiled run continued ends bitwise equal to an
uninterrupted compiled run; with document masking too, on documents shorter than a block."""

from __future__ import annotations

import pytest
import torch
from helpers import make_docs, read_log, tiny_run_flags, untimed_log, write_jsonl
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


@pytest.mark.parametrize("document_masking", [False, True], ids=["plain", "document-masking"])
@torch._dynamo.config.patch(error_on_recompile=True)  # eval, the last batch, sampling (monkeypatch's undo deletes it)
def test_a_compiled_run_continues_bitwise_and_never_compiles_twice(tmp_path, capsys, document_masking):
    extra = ["--document-masking", "--train", str(write_jsonl(tmp_path / "docs.jsonl", make_docs(80)))] \
        if document_masking else []
    whole = compiled_run(tmp_path, "whole", *extra)
    assert "compiled the model in" in capsys.readouterr().out
    stopped = compiled_run(tmp_path, "stopped", *extra, "--stop-at-step", "3")
    torch._dynamo.reset()
    run(continue_setup([str(stopped)]))
    assert untimed_log(stopped) == untimed_log(whole)
    saved, reference = load_file(stopped / "final" / "model.safetensors"), load_file(whole / "final" /
                                                                                      "model.safetensors")
    assert not [name for name in saved if "_orig_mod" in name] and saved.keys() == reference.keys()
    assert all(saved[name].equal(reference[name]) for name in saved)
    assert [r["step"] for r in read_log(whole) if r["split"] == "valid"] == [2, 4, 6]
