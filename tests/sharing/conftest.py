"""One tiny finished run, trained in this process (a few seconds), for the tests of what shares a run."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import tiny_run_flags

from hfgpt.training.modes import train_setup
from hfgpt.training.trainer import run

SAMPLE_PROMPT = "The"


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """8 steps, evaluated and checkpointed every 4, with a sample, a license and a held-out validation set."""
    root = tmp_path_factory.mktemp("shared")
    return run(train_setup(tiny_run_flags(root, "tiny", "--max-steps", "8", "--eval-every", "4", "--ckpt-every", "4",
                                          "--sample-tokens", "12", "--sample-prompt", SAMPLE_PROMPT,
                                          "--license", "mit")))
