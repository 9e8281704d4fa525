"""Runs that are stopped, killed and continued, and the comparison of how they end: bitwise, or their losses to a
tolerance.

Shared by test_resume.py, test_distributed.py, test_muon.py, and kills.py (runs SIGKILLed at random).
"""

from __future__ import annotations

import random
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from helpers import untimed_log
from safetensors.torch import load_file
from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

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


def checkpoint_contents(folder: Path) -> dict[str, object]:
    """Every tensor and plain value in a checkpoint's weight, optimizer and scheduler files (DeepSpeed's and FSDP's
    sharded ones too), by file and key path. Its random states are left out: the logs and the weights show what they
    decided."""
    found: dict[str, object] = {}

    def walk(value: object, key: str) -> None:
        if isinstance(value, dict):
            for name, inner in value.items():
                walk(inner, f"{key}.{name}")
        elif isinstance(value, (list, tuple)):
            for index, inner in enumerate(value):
                walk(inner, f"{key}[{index}]")
        elif isinstance(value, (torch.Tensor, int, float, str, bool, type(None))):
            found[key] = value

    for path in sorted(folder.rglob("*")):
        if path.suffix == ".safetensors":
            walk(load_file(path), path.relative_to(folder).as_posix())
        elif path.suffix in (".bin", ".pt"):  # accelerate's and DeepSpeed's, written by the run itself
            walk(torch.load(path, map_location="cpu", weights_only=False), path.relative_to(folder).as_posix())
        elif path.name == ".metadata":  # a torch.distributed.checkpoint folder (FSDP's), read whole
            with tempfile.TemporaryDirectory() as scratch:
                whole = Path(scratch) / "whole.pt"
                dcp_to_torch_save(path.parent, whole)
                walk(torch.load(whole, weights_only=False), path.parent.relative_to(folder).as_posix())
    return found


def assert_same_run(run: Path, reference: Path) -> None:
    """Bitwise-equal last checkpoints (weights, optimizer, scheduler), equal per-step logs and the same sample ids
    at every step."""
    last = f"checkpoints/step_{MAX_STEPS:08d}"
    mine, theirs = checkpoint_contents(run / last), checkpoint_contents(reference / last)
    assert mine.keys() == theirs.keys() and any(isinstance(value, torch.Tensor) for value in theirs.values())
    for key, value in theirs.items():
        same = torch.equal(mine[key], value) if isinstance(value, torch.Tensor) else mine[key] == value
        assert same, f"{run.name}: {key} differs"
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
