"""Exact resume: runs stopped at step k (or killed at random) and continued in a fresh process end bitwise
equal to an uninterrupted run, with the same per-step losses and the same sample ids."""

from __future__ import annotations

import json

import pytest
from helpers import run_hfgpt
from resume_helpers import MAX_STEPS, assert_same_run, checked, exact_flags, kill_and_continue

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run, checkpointing every step (saving does not change the math)."""
    root = tmp_path_factory.mktemp("resume")
    checked(run_hfgpt(exact_flags(root, "reference", ckpt_every=1), cwd=root))
    return root


# 24 training blocks, 8 per step: epochs end after steps 3, 6, 9 and 12; checkpoints every 4 steps.
STOPS = {
    "mid first epoch": 2,
    "epoch boundary": 6,
    "mid later epoch": 7,
    "right after a save": 8,
    "before the last step": MAX_STEPS - 1,
}


@pytest.mark.parametrize("where", list(STOPS))
def test_stopped_and_continued_run_is_bitwise_the_uninterrupted_one(reference, where):
    root, k = reference, STOPS[where]
    name = f"stop{k}"
    stopped = checked(run_hfgpt([*exact_flags(root, name), "--stop-at-step", str(k)], cwd=root))
    assert f"stopped after step {k}" in stopped.stdout
    run_dir = root / "runs" / name
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
    continued = checked(run_hfgpt(["continue", str(run_dir)], cwd=root))
    assert f"(step {k})" in continued.stdout
    assert_same_run(run_dir, root / "runs" / "reference")
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "completed"
    assert [(s["mode"], s["start_step"], s["end_step"]) for s in info["sessions"]] == \
        [("train", 0, k), ("continue", k, MAX_STEPS)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_runs_killed_at_random_moments_resume_bitwise(reference, seed):
    """SIGKILL (no chance to clean up), often in the middle of writing a checkpoint, twice per run."""
    run_dir, struck = kill_and_continue(reference, f"killed{seed}", seed=seed, kills=2)
    assert struck >= 1
    assert_same_run(run_dir, reference / "runs" / "reference")
