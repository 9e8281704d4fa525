"""Runs that are stopped, killed and continued, and the comparison of how they end: bitwise, or their losses to a
tolerance.

Shared by test_resume.py, test_distributed.py, test_muon.py and by `python tests/kill_resume.py`, which runs many
random kills.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from helpers import REPO, run_hfgpt, untimed_log
from safetensors.torch import load_file

MAX_STEPS = 12
SEQ, BATCH = 32, 8
TRAIN_BLOCKS = 24  # the corpus is exactly 24 blocks: an epoch is 3 steps of 8 sequences
EVAL_EVERY = 4
LOG_LINES = MAX_STEPS + MAX_STEPS // EVAL_EVERY  # a train record per step and a valid one per evaluation


def write_exact_corpus(folder: Path, train_blocks: int = TRAIN_BLOCKS, seq: int = SEQ) -> tuple[Path, Path]:
    """Train text of exactly `train_blocks` x `seq` tokens (with its EOS) and a separate validation text.

    Written once per folder: writing them again would change their modification time, and with it the data
    fingerprint that `continue` compares."""
    train, valid = folder / "train.txt", folder / "valid.txt"
    if train.is_file() and valid.is_file():
        return train, valid
    rng = random.Random(0)
    alphabet = "abcdefghij klmnop\n"
    folder.mkdir(parents=True, exist_ok=True)
    train.write_text("".join(rng.choice(alphabet) for _ in range(train_blocks * seq - 1)))
    valid.write_text("".join(rng.choice(alphabet) for _ in range(6 * seq - 1)))
    return train, valid


def exact_flags(root: Path, name: str, ckpt_every: int = 4) -> list[str]:
    """A tiny run with dropout (so the RNG matters), deterministic kernels and every step logged."""
    train, valid = write_exact_corpus(root / "data")
    return ["--dim", "32", "--heads", "2", "--layers", "2", "--seq", str(SEQ), "--batch", str(BATCH),
            "--lr", "3e-3", "--warmup-steps", "2", "--dropout", "0.1", "--deterministic", "--log-every", "1",
            "--log-samples", "--eval-every", str(EVAL_EVERY), "--eval-batches", "2", "--no-progress-bar",
            "--sample-tokens", "0",
            "--trackers", "none", "--train", str(train), "--valid", str(valid), "--max-steps", str(MAX_STEPS),
            "--ckpt-every", str(ckpt_every), "--rundir", str(root / "runs"), "--run-name", name,
            "--cache-dir", str(root / "cache"), "--cpu-threads", "1"]


# The CPU presets, which the suite runs as shipped; the others name a CUDA device.
CPU_PRESETS = ("quickstart", "shakespeare-char", "llama-style", "speedrun")
Flags = Callable[[Path, str, int], list[str]]


def preset_flags(preset: str) -> Flags:
    """The flags of a run of `preset` exactly as shipped (its model, precision, compile and threads), cut to
    MAX_STEPS steps on the test's own text, every step logged and checkpointed as asked: as exact_flags."""

    def flags(root: Path, name: str, ckpt_every: int = 4) -> list[str]:
        train, valid = write_exact_corpus(root / "preset-data", train_blocks=32, seq=128)
        return ["--config", preset, "--train", str(train), "--valid", str(valid), "--max-steps", str(MAX_STEPS),
                "--eval-every", str(EVAL_EVERY), "--eval-batches", "2", "--log-every", "1", "--log-samples",
                "--sample-tokens", "0", "--trackers", "none", "--no-progress-bar", "--ckpt-every", str(ckpt_every),
                "--rundir", str(root / "runs"), "--run-name", name, "--cache-dir", str(root / "cache")]

    return flags


def checked(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    """The result of a launch that must succeed; on failure, the ranks' errors (before the launcher's)."""
    assert result.returncode == 0, result.stdout[-2000:] + "\n".join(
        line for line in result.stderr.splitlines() if "Error" in line or "rank" in line)[-12000:]
    return result


def final_state(run_dir: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """The model weights and optimizer state of a run's last checkpoint."""
    last = run_dir / "checkpoints" / f"step_{MAX_STEPS:08d}"
    return load_file(last / "model.safetensors"), torch.load(last / "optimizer.bin", weights_only=True)


def assert_same_run(run: Path, reference: Path) -> None:
    """Bitwise-equal model and optimizer, equal per-step logs and the same sample ids at every step."""
    weights, optimizer = final_state(run)
    ref_weights, ref_optimizer = final_state(reference)
    assert weights.keys() == ref_weights.keys()
    for name, tensor in ref_weights.items():
        assert torch.equal(weights[name], tensor), f"{run.name}: weight {name} differs"
    assert optimizer["param_groups"] == ref_optimizer["param_groups"]
    for index, state in ref_optimizer["state"].items():
        for key, value in state.items():
            assert torch.equal(optimizer["state"][index][key], value), f"{run.name}: optimizer {index}.{key} differs"
    assert untimed_log(run) == untimed_log(reference)
    assert untimed_log(run, "samples.jsonl") == untimed_log(reference, "samples.jsonl")


def losses(run_dir: Path) -> list[tuple[int, str, float]]:
    """(step, split, loss) of every record that has a loss (a task's record has scores instead)."""
    return [(r["step"], r["split"], r["loss"]) for r in untimed_log(run_dir) if "loss" in r]


def largest_relative_difference(run: Path, reference: Path) -> float:
    """The largest relative difference of the logged losses of two runs that log the same steps."""
    mine, theirs = losses(run), losses(reference)
    assert [m[:2] for m in mine] == [t[:2] for t in theirs], "the same steps are logged"
    return max(abs(m[2] - t[2]) / abs(t[2]) for m, t in zip(mine, theirs, strict=True))


# recipes/train.py, SIGKILLed inside the save of one checkpoint: after accelerate's save_state has written
# its files, before the manifest that would seal them (argv: the step, then the script and its arguments).
KILL_INSIDE_SAVE = """
import os, runpy, signal, sys
import hfgpt.runs.checkpoint

step, seal = int(sys.argv[1]), hfgpt.runs.checkpoint.write_manifest


def killed_before_sealing(folder, saved_step):
    if saved_step == step:
        os.kill(os.getpid(), signal.SIGKILL)
    seal(folder, saved_step)


hfgpt.runs.checkpoint.write_manifest = killed_before_sealing
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def kill_inside_save(root: Path, name: str, step: int) -> Path:
    """Start a run (checkpointing every step) that is SIGKILLed while it saves checkpoint `step`; returns its
    run directory, with the proof that the kill struck inside the save: the save's files without a seal."""
    script = str(REPO / "recipes" / "train.py")
    killed = subprocess.run([sys.executable, "-c", KILL_INSIDE_SAVE, str(step), script,
                             *exact_flags(root, name, ckpt_every=1)], cwd=root, capture_output=True, text=True,
                            timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    checkpoints = root / "runs" / name / "checkpoints"
    unsealed = checkpoints / f".step_{step:08d}.tmp"
    assert (unsealed / "model.safetensors").is_file() and not (unsealed / "checkpoint.json").exists(), \
        f"the kill did not strike inside the save of step {step}"
    assert (checkpoints / "latest.txt").read_text().strip() == f"step_{step - 1:08d}"
    return root / "runs" / name


def kill_and_continue(root: Path, name: str, seed: int, kills: int = 1, ckpt_every: int = 1,
                      run_flags: Flags = exact_flags) -> tuple[Path, int]:
    """Start a run, SIGKILL it at random moments `kills` times (continuing after each), then let it finish;
    returns the run directory and how many kills struck a live process (a run may finish first)."""
    rng = random.Random(seed)
    flags = run_flags(root, name, ckpt_every)
    run_dir = root / "runs" / name
    command = [sys.executable, str(REPO / "recipes" / "train.py")]
    struck = 0
    for attempt in range(kills + 1):
        if (run_dir / "run.json").is_file() and json.loads((run_dir / "run.json").read_text())["status"] == "completed":
            return run_dir, struck  # it finished before the kill
        resumable = (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").glob("step_*"))
        args = ["continue", str(run_dir)] if resumable else ["train", *flags, "--overwrite"]
        if attempt == kills:
            checked(run_hfgpt(args, cwd=root))
            return run_dir, struck
        log = run_dir / "train_log.jsonl"
        logged = log.read_text().count("\n") if log.is_file() else 0
        process = subprocess.Popen(command + args, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started = time.monotonic()
        target = logged + rng.randint(1, max(1, LOG_LINES - logged))  # the last one strikes the run's ending
        while process.poll() is None and time.monotonic() - started < 120 \
                and not (log.is_file() and log.read_text().count("\n") >= target):
            time.sleep(0.002)  # wait until this attempt has logged up to its target (saving every step)
        time.sleep(rng.uniform(0.0, 0.05))
        struck += process.poll() is None
        process.kill()
        process.wait()
    return run_dir, struck
