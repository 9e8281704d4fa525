"""Resuming: what `continue` refuses, and exactness: runs stopped at step k (or killed at random) and
continued in a fresh process end bitwise equal to an uninterrupted run, with the same per-step losses and
the same sample ids."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from helpers import plant_pickle, read_log, reseal_checkpoint, run_hfgpt, untimed_log
from kills import kill_and_continue, kill_inside_save
from resume_helpers import (
    CPU_PRESETS,
    MAX_STEPS,
    assert_same_run,
    checked,
    exact_flags,
    preset_flags,
)

from hfgpt.config import TrainingSection
from hfgpt.errors import HfGptError
from hfgpt.runs.resume import check_steps_left
from hfgpt.runs.state import check_same_run
from hfgpt.training.optim import apply_peak_lr, build_scheduler, lr_factor

SAVED = {"world_size": 2, "global_batch": 16, "seq_len": 32, "tokenizer": "aa", "data": "bb"}


@pytest.mark.parametrize(("key", "fix"), [("world_size", "--num_processes"), ("global_batch", "batch settings"),
                                          ("seq_len", "sequence length"), ("tokenizer", "tokenizer/"),
                                          ("data", "--train")])
def test_a_continue_that_would_change_the_math_names_what_changed(tmp_path, key, fix):
    check_same_run(tmp_path, derived=(SAVED, dict(SAVED)))
    with pytest.raises(HfGptError, match=rf"checkpoint has {key} .* but this launch has .*{fix}"):
        check_same_run(tmp_path, derived=(SAVED, {**SAVED, key: "other"}))


def test_a_run_with_no_steps_left_is_refused_unless_it_still_has_to_finish(tmp_path):
    check_steps_left(tmp_path, 7, 8)
    check_steps_left(tmp_path, 8, 8)  # killed after its last checkpoint, before final/: it only finishes
    (tmp_path / "final").mkdir()
    (tmp_path / "final" / "metrics.json").write_text(json.dumps({"step": 8}))
    (tmp_path / "run.json").write_text(json.dumps({"status": "running", "sessions": []}))
    check_steps_left(tmp_path, 8, 8)  # killed after final/, before run.json said completed: it only finishes
    (tmp_path / "run.json").write_text(json.dumps({"status": "completed", "sessions": []}))
    with pytest.raises(HfGptError, match=r"already trained for 8 steps .*larger --max-steps"):
        check_steps_left(tmp_path, 8, 8)
    check_steps_left(tmp_path, 8, 12)
    with pytest.raises(HfGptError, match="already trained for 9 steps"):
        check_steps_left(tmp_path, 9, 8)


def test_a_new_peak_lr_takes_over_from_the_restored_schedule_at_its_step():
    training = TrainingSection(max_steps=100, warmup_steps=10)
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=1e-3)
    scheduler = build_scheduler(optimizer, training)
    for _ in range(40):
        optimizer.step()
        scheduler.step()
    apply_peak_lr(optimizer, scheduler, [1e-3], training)  # the same peak: nothing to do
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * lr_factor(40, training))
    apply_peak_lr(optimizer, scheduler, [5e-4], training)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(5e-4 * lr_factor(40, training))
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(5e-4 * lr_factor(41, training))


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


@pytest.mark.slow
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


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_runs_killed_at_random_moments_resume_bitwise(reference, seed):
    """SIGKILL (no chance to clean up): first inside the save of a checkpoint, then twice at random moments."""
    kill_inside_save(reference, f"killed{seed}", step=2 * seed)
    killed = kill_and_continue(reference, f"killed{seed}", seed=seed, kills=2)
    assert killed.struck >= 1
    assert_same_run(killed.run_dir, reference / "runs" / "reference")


@pytest.mark.slow
@pytest.mark.whole_machine  # a thread per core of the machine, as shipped
@pytest.mark.parametrize("preset", CPU_PRESETS)
def test_each_cpu_preset_as_shipped_is_killed_and_continued_bitwise(tmp_path, preset):
    """docs/runs.md's promise as users run the presets: their precision, compile and threads, nothing pinned.
    (shakespeare-char compiles, and a compiled run on 2 threads summed its embedding gradients in a new order
    every run until hfgpt used deterministic algorithms on the CPU.)"""
    run_flags = preset_flags(preset)
    reference = checked(run_hfgpt(run_flags(tmp_path, "reference", 1), cwd=tmp_path))
    assert "bitwise reproducible" in reference.stdout
    killed = kill_and_continue(tmp_path, "killed", seed=5, run_flags=run_flags)  # after about 8 steps
    assert killed.struck == 1
    assert_same_run(killed.run_dir, tmp_path / "runs" / "reference")


@pytest.mark.slow
def test_an_rng_state_that_does_not_load_is_set_aside_and_the_run_stays_exact(reference):
    """accelerate skips an RNG file it cannot load; hfgpt notices, and resumes from the checkpoint before."""
    root = reference
    checked(run_hfgpt([*exact_flags(root, "rng"), "--stop-at-step", "8"], cwd=root))  # checkpoints 4 and 8
    run_dir = root / "runs" / "rng"
    newest = run_dir / "checkpoints" / "step_00000008"
    plant_pickle(newest / "random_states_0.pkl", root / "pwned")  # weights_only refuses it
    reseal_checkpoint(newest)
    continued = checked(run_hfgpt(["continue", str(run_dir)], cwd=root))
    assert "step_00000008: its RNG state did not load from random_states_0.pkl" in continued.stderr, \
        continued.stderr[-3000:]
    assert "(step 4)" in continued.stdout and (run_dir / "checkpoints" / "step_00000008.unusable").is_dir()
    assert_same_run(run_dir, root / "runs" / "reference")


@pytest.mark.slow
def test_the_metric_window_and_early_stopping_go_on_across_a_continue(tmp_path):
    """Logged every 3 steps and stopped at step 5, the run resumes with steps 4-5 in its metric window and one
    evaluation without improvement counted: the next log line and the early stop come as without the stop."""
    stopping = ["--log-every", "3", "--eval-every", "2", "--ckpt-every", "2", "--early-stopping", "--patience", "2",
                "--early-stopping-min-delta", "100"]  # no evaluation after the first improves by that much
    checked(run_hfgpt([*exact_flags(tmp_path, "reference"), *stopping], cwd=tmp_path))
    reference = tmp_path / "runs" / "reference"
    info = json.loads((reference / "run.json").read_text())
    assert (info["status"], info["sessions"][-1]["end_step"]) == ("stopped early", 6)
    assert [(r["step"], r["split"]) for r in untimed_log(reference)] == [
        (2, "valid"), (3, "train"), (4, "valid"), (6, "train"), (6, "valid")]

    checked(run_hfgpt([*exact_flags(tmp_path, "resumed"), *stopping, "--stop-at-step", "5"], cwd=tmp_path))
    resumed = tmp_path / "runs" / "resumed"
    assert "(step 5)" in checked(run_hfgpt(["continue", str(resumed)], cwd=tmp_path)).stdout
    assert untimed_log(resumed) == untimed_log(reference)
    info = json.loads((resumed / "run.json").read_text())
    assert (info["status"], info["sessions"][-1]["end_step"]) == ("stopped early", 6)


def write_short_documents(folder: Path) -> None:
    """The train and validation texts exact_flags reads (it keeps files that exist), made of short documents
    with a blank line between them: most blocks hold several documents, and `--split-documents blank-line` ends
    each with an end-of-text token."""
    rng = random.Random(0)
    folder.mkdir(parents=True)
    for name, documents in (("train.txt", 50), ("valid.txt", 12)):
        texts = ["".join(rng.choice("abcdefghij klmnop") for _ in range(rng.randint(3, 25))).strip() or "a"
                 for _ in range(documents)]
        (folder / name).write_text("\n\n".join(texts) + "\n")


@pytest.mark.slow
def test_a_run_with_document_masking_continues_bitwise_and_evaluates_as_it_trained(tmp_path):
    write_short_documents(tmp_path / "data")
    masked = ["--split-documents", "blank-line", "--document-masking"]
    checked(run_hfgpt([*exact_flags(tmp_path, "reference"), *masked], cwd=tmp_path))
    checked(run_hfgpt([*exact_flags(tmp_path, "stopped"), *masked, "--stop-at-step", "5"], cwd=tmp_path))
    checked(run_hfgpt(["continue", str(tmp_path / "runs" / "stopped")], cwd=tmp_path))
    reference = tmp_path / "runs" / "reference"
    assert_same_run(tmp_path / "runs" / "stopped", reference)
    assert json.loads((reference / "final" / "config.json").read_text())["document_masking"] is True

    # the masking is in the run: without it the very first step computes another loss
    checked(run_hfgpt([*exact_flags(tmp_path, "unmasked"), "--split-documents", "blank-line", "--stop-at-step", "1"],
                      cwd=tmp_path))
    first = [next(r["loss"] for r in read_log(tmp_path / "runs" / name) if r["split"] == "train")
             for name in ("reference", "unmasked")]
    assert first[0] != first[1], first
    # hfgpt eval measures the saved model as the run measured it: its validation blocks give its last loss
    evaluated = checked(run_hfgpt(["eval", str(reference), "--json", "--no-progress-bar"], cwd=tmp_path))
    last_valid = [r for r in read_log(reference) if r["split"] == "valid"][-1]
    assert json.loads(evaluated.stdout.splitlines()[-1])["loss"] == last_valid["loss"]
