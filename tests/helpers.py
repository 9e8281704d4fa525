"""Helpers the tests share: small text corpora made on the spot, and running the training entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PANGRAMS = [
    "The quick brown fox jumps over the lazy dog.",
    "Pack my box with five dozen liquor jugs.",
    "How vexingly quick daft zebras jump!",
    "Sphinx of black quartz, judge my vow.",
]


def write_corpus(folder: Path, documents: int = 40) -> Path:
    """A small, learnable corpus: repetitive English lines, one .txt file per document."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(documents):
        lines = [PANGRAMS[(index + k) % len(PANGRAMS)] for k in range(12)]
        (folder / f"doc{index:03d}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def run_hfgpt(args: list[str], cwd: Path, launcher: str = "python", timeout: int = 600,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run recipes/train.py (under `accelerate launch` or plain python) and capture its output."""
    script = str(REPO / "recipes" / "train.py")
    if launcher == "accelerate":
        command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1",
                   "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", script, *args]
    else:
        command = [sys.executable, script, *args]
    full_env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", **(env or {})}
    return subprocess.run(command, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


TINY_MODEL_FLAGS = ["--dim", "32", "--heads", "2", "--layers", "2", "--seq", "32", "--batch", "8",
                    "--lr", "3e-3", "--warmup-steps", "5", "--log-every", "5", "--eval-every", "20",
                    "--eval-batches", "2", "--no-progress-bar", "--sample-tokens", "20"]
