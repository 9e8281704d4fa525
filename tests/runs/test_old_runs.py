"""Runs saved by earlier versions of hfgpt still continue, and end as an uninterrupted run of today's code."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from helpers import REPO, untimed_log
from safetensors.torch import load_file

from hfgpt.training.modes import continue_setup, train_setup
from hfgpt.training.trainer import run

pytestmark = pytest.mark.slow

FIXTURE = REPO / "tests" / "fixtures" / "old-layout-run"
# The flags the fixture was made with (its README), without the stop at step 4 and the places; with the
# defaults of then that have changed since (precision auto, the optimizer kernel, lr).
FLAGS = ["--precision", "fp32", "--optimizer-kernel", "foreach", "--lr", "1e-3",
         "--dim", "16", "--heads", "2", "--layers", "1", "--seq", "16", "--batch", "4", "--max-steps", "6",
         "--ckpt-every", "2", "--eval-every", "2", "--log-every", "1", "--eval-batches", "1", "--trackers", "none",
         "--sample-tokens", "0", "--no-progress-bar", "--cpu-threads", "1"]


def restore_its_data() -> Path:
    """The fixture's corpus at the path and modification time its run knows it by."""
    recorded = json.loads((FIXTURE / "data.json").read_text())
    path = Path(recorded["path"])
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(FIXTURE / "corpus.txt", path)
    os.utime(path, ns=(recorded["mtime_ns"], recorded["mtime_ns"]))
    return path


def test_a_run_saved_before_the_regrouping_continues_to_the_end_of_an_uninterrupted_run(tmp_path):
    corpus = restore_its_data()
    old = shutil.copytree(FIXTURE / "old-layout", tmp_path / "runs" / "old-layout", symlinks=True)
    run(continue_setup([str(old), "--cache-dir", str(tmp_path / "cache")]))
    fresh = run(train_setup([*FLAGS, "--train", str(corpus), "--rundir", str(tmp_path / "runs"), "--run-name",
                             "fresh", "--cache-dir", str(tmp_path / "cache")]))
    # Bits per byte is measured since the fixture was saved at step 4: its own records lack it, the rest have it.
    fresh_log = [{key: value for key, value in record.items() if record["step"] > 4 or key != "bpb"}
                 for record in untimed_log(fresh)]
    assert untimed_log(old) == fresh_log
    continued, uninterrupted = (load_file(run_dir / "final" / "model.safetensors") for run_dir in (old, fresh))
    assert continued.keys() == uninterrupted.keys()
    assert all(continued[name].equal(uninterrupted[name]) for name in continued)
    assert json.loads((old / "run.json").read_text())["status"] == "completed"
