"""Runs saved by earlier versions of hfgpt still continue, and end as an uninterrupted run of today's code.

The fixture was trained on another machine, whose fp32 kernels round differently from this one's (AMX or AVX-512
or AVX2): its recorded losses differ from this machine's in the 7th digit (3.647465467 there, 3.647465706 on an
AMD EPYC for step 1). So the continued run is compared with the uninterrupted one to fp32's rounding, not bitwise:
a layout that lost anything the run needs moves the steps after the resume by far more (the figures are at the
tolerances below). Bitwise resume is tested where one machine computes both runs (test_resume.py, kill_resume.py).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import pytest
import torch
from helpers import REPO, untimed_log
from safetensors.torch import load_file

from hfgpt.training.modes import continue_setup, train_setup
from hfgpt.training.trainer import run

pytestmark = [pytest.mark.slow, pytest.mark.machine_sensitive]

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


# Measured against the fixture on an AMD EPYC with each of its kernel sets (AVX-512, ATEN_CPU_CAPABILITY=avx2 with
# MKL and oneDNN capped likewise, and default): losses differ by at most 6.5e-8 relative (half an fp32 ulp) and
# final weights by at most 2.7e-8. A continue that dropped the optimizer's moments moved the step-6 loss by 7.0e-5
# relative and a weight by 1.5e-4. The tolerances sit 15-40x above the first and 70-150x below the second.
LOSS_RTOL = 1e-6
WEIGHT_ATOL = 1e-6


def assert_equal_to_rounding(records: list[dict], reference: list[dict]) -> None:
    """The same records, fields and exact values, but for floats, equal to LOSS_RTOL."""
    assert [(r["step"], r["split"], sorted(r)) for r in records] == \
        [(r["step"], r["split"], sorted(r)) for r in reference]
    for record, expected in zip(records, reference, strict=True):
        for key, value in expected.items():
            if isinstance(value, float):
                assert math.isclose(record[key], value, rel_tol=LOSS_RTOL, abs_tol=1e-12), (record, key, value)
            else:
                assert record[key] == value, (record, key, value)


def test_a_run_saved_before_the_regrouping_continues_to_the_end_of_an_uninterrupted_run(tmp_path):
    corpus = restore_its_data()
    old = shutil.copytree(FIXTURE / "old-layout", tmp_path / "runs" / "old-layout", symlinks=True)
    run(continue_setup([str(old), "--cache-dir", str(tmp_path / "cache")]))
    fresh = run(train_setup([*FLAGS, "--train", str(corpus), "--rundir", str(tmp_path / "runs"), "--run-name",
                             "fresh", "--cache-dir", str(tmp_path / "cache")]))
    # Bits per byte is measured since the fixture was saved at step 4: its own records lack it, the rest have it.
    fresh_log = [{key: value for key, value in record.items() if record["step"] > 4 or key != "bpb"}
                 for record in untimed_log(fresh)]
    assert_equal_to_rounding(untimed_log(old), fresh_log)
    continued, uninterrupted = (load_file(run_dir / "final" / "model.safetensors") for run_dir in (old, fresh))
    assert continued.keys() == uninterrupted.keys()
    for name, tensor in uninterrupted.items():
        torch.testing.assert_close(continued[name], tensor, rtol=0, atol=WEIGHT_ATOL, msg=name)
    assert json.loads((old / "run.json").read_text())["status"] == "completed"
