"""Faults during training: non-finite steps are skipped and counted, too many stop the run with a diagnostic,
a full disk loses nothing, SIGTERM checkpoints and exits cleanly, and early stopping keeps best/."""

from __future__ import annotations

import errno
import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from helpers import REPO, read_log, run_hfgpt, tiny_run_flags, untimed_log
from safetensors.torch import load_file

import hfgpt.runs.checkpoint
from hfgpt.errors import HfGptError
from hfgpt.models.hfgpt.modeling_hfgpt import HfGptForCausalLM
from hfgpt.runs.checkpoint import checkpoint_problem, complete_checkpoints
from hfgpt.training.modes import continue_setup, train_setup
from hfgpt.training.optim import lr_factor
from hfgpt.training.trainer import run

pytestmark = pytest.mark.slow


def poison_training_steps(monkeypatch, bad_calls):
    """Make the logits, and so the loss, of chosen training forward passes NaN, as a numerical blow-up would."""
    real_forward = HfGptForCausalLM.forward
    calls = {"n": 0}

    def forward(self, *args, **kwargs):
        output = real_forward(self, *args, **kwargs)
        if self.training:
            calls["n"] += 1
            if calls["n"] in bad_calls:
                output.logits = output.logits * float("nan")
        return output

    monkeypatch.setattr(HfGptForCausalLM, "forward", forward)


@pytest.mark.parametrize(("step_sync", "optimizer"), [("every-step", "adamw"), ("lagged", "adamw"),
                                                    ("every-step", "muon")])  # Muon has no device-side skip
def test_a_non_finite_step_is_skipped_counted_and_logged(tmp_path, monkeypatch, step_sync, optimizer):
    poison_training_steps(monkeypatch, bad_calls={3})
    setup = train_setup(tiny_run_flags(tmp_path, "nan", "--max-steps", "5", "--ckpt-every", "1",
                                       "--step-sync", step_sync, "--optimizer", optimizer))
    run_dir = run(setup)
    checkpoints = {p.name: p for p in complete_checkpoints(run_dir)}
    before, after = (load_file(checkpoints[f"step_0000000{k}"] / "model.safetensors") for k in (2, 3))
    assert all(torch.equal(before[name], after[name]) for name in before), "the skipped step changed weights"
    records = read_log(run_dir)
    assert [r["step"] for r in records if r["split"] == "skipped"] == [3]
    train = {r["step"]: r for r in records if r["split"] == "train"}
    assert sorted(train) == [1, 2, 4, 5], "a window of only skipped steps has no loss to log"
    # every-step: the schedule does not advance on a skipped step, so after step 4 it has stepped 3 times;
    # lagged: it follows the step count (the host learns of the skip after the next step is under way).
    schedule_steps = 3 if step_sync == "every-step" else 4
    assert train[4]["lr"] == pytest.approx(setup.cfg.training.lr * lr_factor(schedule_steps, setup.cfg.training))
    assert train[5]["skipped_steps"] == 1 and math.isfinite(train[5]["loss"])
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"


@pytest.mark.parametrize("step_sync", ["every-step", "lagged"])
def test_too_many_bad_steps_in_a_row_stop_with_a_diagnostic(tmp_path, monkeypatch, step_sync):
    poison_training_steps(monkeypatch, bad_calls=set(range(4, 100)))
    with pytest.raises(HfGptError, match=r"3 steps in a row \(up to step 6\).*checkpoint, from step 4, is intact"):
        run(train_setup(tiny_run_flags(tmp_path, "diverged", "--max-steps", "20", "--ckpt-every", "2",
                              "--max-bad-steps", "3", "--step-sync", step_sync)))
    run_dir = tmp_path / "runs" / "diverged"
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "failed" and "steps in a row" in info["sessions"][-1]["reason"]
    assert [p.name for p in complete_checkpoints(run_dir)] == ["step_00000002", "step_00000004"]
    assert not [r for r in read_log(run_dir) if r["split"] == "train" and r["step"] > 3], \
        "a window of skipped steps has no loss to log"


def test_lagged_flags_keep_a_stopped_and_continued_run_exact_across_a_skipped_step(tmp_path, monkeypatch):
    """Logged every 3 steps, the lagged run reads step 5's flags after step 6 has run; stopped at step 5, it reads
    them before its checkpoint. Both log the skip and end bitwise alike."""
    flags = ["--step-sync", "lagged", "--max-steps", "8", "--log-every", "3", "--ckpt-every", "4", "--eval-every",
             "0", "--dropout", "0.1", "--deterministic", "--cpu-threads", "1", "--sample-tokens", "0"]
    poison_training_steps(monkeypatch, bad_calls={5})
    whole = run(train_setup(tiny_run_flags(tmp_path, "whole", *flags)))
    poison_training_steps(monkeypatch, bad_calls={5})
    stopped = run(train_setup(tiny_run_flags(tmp_path, "stopped", *flags, "--stop-at-step", "5")))
    monkeypatch.undo()
    run(continue_setup([str(stopped)]))
    assert untimed_log(stopped) == untimed_log(whole)
    assert [r["step"] for r in read_log(whole) if r["split"] == "skipped"] == [5]
    saved, reference = (load_file(folder / "final" / "model.safetensors") for folder in (stopped, whole))
    assert all(saved[name].equal(reference[name]) for name in saved)


def test_a_full_disk_while_saving_keeps_the_previous_checkpoint_and_says_so(tmp_path, monkeypatch):
    real_manifest = hfgpt.runs.checkpoint.write_manifest

    def full_disk_on_the_second_save(folder, step):
        if step == 4:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder / "optimizer.bin"))
        real_manifest(folder, step)

    monkeypatch.setattr(hfgpt.runs.checkpoint, "write_manifest", full_disk_on_the_second_save)
    with pytest.raises(HfGptError, match=r"No space left on device.*checkpoint, from step 2, is intact"):
        run(train_setup(tiny_run_flags(tmp_path, "full", "--max-steps", "6", "--ckpt-every", "2")))
    run_dir = tmp_path / "runs" / "full"
    assert [p.name for p in complete_checkpoints(run_dir)] == ["step_00000002"]
    assert checkpoint_problem(run_dir / "checkpoints" / "step_00000002") == ""
    monkeypatch.setattr(hfgpt.runs.checkpoint, "write_manifest", real_manifest)
    resumed = run_hfgpt(["continue", str(run_dir)], cwd=tmp_path)
    assert resumed.returncode == 0 and "(step 2)" in resumed.stdout, resumed.stderr[-3000:]


@pytest.mark.parametrize("export", ["best", "final"])
def test_a_full_disk_while_writing_best_or_final_keeps_the_old_copy_and_continue_recovers(
        tmp_path, monkeypatch, export):
    real_save = HfGptForCausalLM.save_pretrained
    failed = []

    def full_disk(self, folder, *args, **kwargs):
        real_save(self, folder, *args, **kwargs)
        if f".{export}.tmp" in str(folder) and (export == "final" or os.path.isdir(tmp_path / "runs" / "x" / "best")):
            failed.append(folder)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder))

    monkeypatch.setattr(HfGptForCausalLM, "save_pretrained", full_disk)
    with pytest.raises(HfGptError, match=rf"could not write {export}/: No space left .*checkpoint, from step "):
        run(train_setup(tiny_run_flags(tmp_path, "x", "--max-steps", "4", "--ckpt-every", "2", "--eval-every", "2",
                              "--lr", "1e-3")))
    run_dir = tmp_path / "runs" / "x"
    assert failed and not (run_dir / f".{export}.tmp").exists()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"
    if export == "best":
        assert json.loads((run_dir / "best" / "metrics.json").read_text())["step"] == 2  # the old copy
    else:
        assert not (run_dir / "final").exists() and [p.name for p in complete_checkpoints(run_dir)][-1] == \
            "step_00000004"
    monkeypatch.setattr(HfGptForCausalLM, "save_pretrained", real_save)
    resumed = run_hfgpt(["continue", str(run_dir)], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((run_dir / "final" / "metrics.json").read_text())["step"] == 4
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"


def test_sigterm_finishes_the_step_checkpoints_and_exits_cleanly(tmp_path):
    args = tiny_run_flags(tmp_path, "preempted", "--max-steps", "100000", "--ckpt-every", "0", "--eval-every", "0")
    process = subprocess.Popen([sys.executable, str(REPO / "recipes" / "train.py"), *args], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = tmp_path / "runs" / "preempted" / "train_log.jsonl"
    deadline = time.monotonic() + 120
    while not (log.is_file() and log.read_text().count("\n") >= 3) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr[-3000:]
    run_dir = tmp_path / "runs" / "preempted"
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "interrupted" and info["sessions"][-1]["reason"] == "SIGTERM received"
    step = info["sessions"][-1]["end_step"]
    assert [p.name for p in complete_checkpoints(run_dir)] == [f"step_{step:08d}"]
    assert f"resume with: hfgpt continue {run_dir}" in stdout


def test_early_stopping_stops_and_best_holds_the_best_model(tmp_path):
    # A learning rate far too high makes the validation loss stop improving quickly. A checkpoint at every
    # evaluation keeps each evaluated model, to compare best/ with.
    result = run_hfgpt(tiny_run_flags(tmp_path, "early", "--max-steps", "400", "--eval-every", "5",
                                      "--early-stopping", "--patience", "2", "--lr", "0.05", "--warmup-steps", "0",
                                      "--ckpt-every", "5"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "runs" / "early"
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "stopped early", info["sessions"]
    valid = [r for r in read_log(run_dir) if r["split"] == "valid"]
    best = min(valid, key=lambda r: r["loss"])
    saved = json.loads((run_dir / "best" / "metrics.json").read_text())
    assert saved["step"] == best["step"] and saved["loss"] == best["loss"]
    assert valid[-1]["step"] == best["step"] + 2 * 5 < 400
    best_weights = load_file(run_dir / "best" / "model.safetensors")
    at_best_step = load_file(run_dir / "checkpoints" / f"step_{best['step']:08d}" / "model.safetensors")
    assert best_weights.keys() <= at_best_step.keys()
    assert all(torch.equal(tensor, at_best_step[name]) for name, tensor in best_weights.items()), \
        "best/ does not hold the model of the best validation loss"
    assert (run_dir / "final" / "config.json").is_file()
