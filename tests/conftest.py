"""Shared fixtures: one real training run, reused by the tests that read what a run leaves behind."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import TINY_MODEL_FLAGS, run_hfgpt, write_corpus


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """One short `accelerate launch recipes/train.py` run on tiny data; returns its run directory."""
    root = tmp_path_factory.mktemp("trained")
    corpus = write_corpus(root / "corpus")
    result = run_hfgpt([*TINY_MODEL_FLAGS, "--data-path", str(corpus), "--max-steps", "60",
                        "--ckpt-every", "30", "--rundir", str(root / "runs"), "--run-name", "tiny",
                        "--cache-dir", str(root / "cache")], cwd=root, launcher="accelerate")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    run_dir = root / "runs" / "tiny"
    (root / "launch_output.txt").write_text(result.stdout + result.stderr)  # beside the run: it holds only hfgpt's
    return run_dir
