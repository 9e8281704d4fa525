"""What the training loop promises about checkpoints, best/ and clipping, checked on tiny in-process runs:
--keep-last as the loop applies it, --max-grad-norm as the optimizer sees it, and --no-save-best."""

from __future__ import annotations

import json
import time

import torch
from helpers import read_log, tiny_run_flags
from torch.optim.optimizer import register_optimizer_step_pre_hook

import hfgpt.training.loop
from hfgpt.runs.checkpoint import complete_checkpoints
from hfgpt.training.modes import continue_setup, train_setup
from hfgpt.training.trainer import run


def test_keep_last_never_prunes_the_best_or_the_resumed_from_checkpoint(tmp_path, monkeypatch):
    """The best evaluation comes first (step 2), so only the loop's protection keeps its checkpoint."""
    real_evaluate = hfgpt.training.loop.evaluate
    evaluations = []

    def best_first(*args):
        evaluations.append(real_evaluate(*args))
        return {**evaluations[-1], "loss": 1.0 if len(evaluations) == 1 else 5.0}

    monkeypatch.setattr(hfgpt.training.loop, "evaluate", best_first)
    run_dir = run(train_setup(tiny_run_flags(tmp_path, "keep", "--max-steps", "8", "--ckpt-every", "2",
                                             "--eval-every", "2", "--keep-last", "1")))
    assert json.loads((run_dir / "best" / "metrics.json").read_text())["step"] == 2
    assert [p.name for p in complete_checkpoints(run_dir)] == ["step_00000002", "step_00000008"]
    run(continue_setup([str(run_dir), "--max-steps", "12"]))
    assert [p.name for p in complete_checkpoints(run_dir)] == ["step_00000002", "step_00000008", "step_00000012"]


def clipped_run(tmp_path, name: str, max_grad_norm: str) -> tuple[list[float], list[float]]:
    """Train 4 steps; returns the gradient norms the optimizer stepped with, and the norms the log reports
    (measured before clipping)."""
    stepped = []

    def measure(optimizer, args, kwargs):
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        stepped.append(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item())

    hook = register_optimizer_step_pre_hook(measure)
    try:
        run_dir = run(train_setup(tiny_run_flags(tmp_path, name, "--max-steps", "4", "--eval-every", "0",
                                                 "--max-grad-norm", max_grad_norm)))
    finally:
        hook.remove()
    return stepped, [r["grad_norm"] for r in read_log(run_dir) if r["split"] == "train"]


def test_max_grad_norm_clips_the_gradient_the_optimizer_steps_with(tmp_path):
    limit = 0.05
    stepped, before_clipping = clipped_run(tmp_path, "clipped", str(limit))
    assert len(stepped) == 4 and all(norm > limit for norm in before_clipping), before_clipping
    assert all(norm <= limit * (1 + 1e-5) for norm in stepped), stepped
    unclipped, _ = clipped_run(tmp_path, "unclipped", "0")  # 0 turns clipping off: the measure can tell
    assert all(norm > limit for norm in unclipped), unclipped


def test_no_save_best_leaves_no_best_folder(tmp_path):
    run_dir = run(train_setup(tiny_run_flags(tmp_path, "nobest", "--max-steps", "4", "--eval-every", "2",
                                             "--no-save-best")))
    assert [r["step"] for r in read_log(run_dir) if r["split"] == "valid"] == [2, 4], "it did evaluate"
    assert not (run_dir / "best").exists() and (run_dir / "final" / "model.safetensors").is_file()


def test_evaluations_and_checkpoints_do_not_count_in_the_training_speed(tmp_path, monkeypatch):
    """A 1 s evaluation and a 1 s save after step 2 leave the window of steps 3-4 at a tiny model's speed (a few
    ms per step): without the exclusion it would read about 1000 ms per step."""
    real_evaluate = hfgpt.training.loop.evaluate

    def slow_evaluate(*args):
        time.sleep(1.0)
        return real_evaluate(*args)

    real_save = hfgpt.training.loop.save_checkpoint

    def slow_save(*args, **kwargs):
        time.sleep(1.0)
        return real_save(*args, **kwargs)

    monkeypatch.setattr(hfgpt.training.loop, "evaluate", slow_evaluate)
    monkeypatch.setattr(hfgpt.training.loop, "save_checkpoint", slow_save)
    run_dir = run(train_setup(tiny_run_flags(tmp_path, "timed", "--max-steps", "4", "--eval-every", "2",
                                             "--ckpt-every", "2", "--log-every", "2")))
    second_window = [r for r in read_log(run_dir) if r["split"] == "train"][1]
    assert second_window["step"] == 4 and second_window["ms_per_step"] < 250, second_window
