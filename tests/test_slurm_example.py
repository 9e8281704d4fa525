"""examples/slurm/train-1node.sbatch, run by bash as Slurm would: SIGTERM before the time limit
checkpoints and requeues, and the requeued job continues the run to the end.

There is no Slurm here: a stand-in `scontrol` on PATH records the requeue (the only Slurm call the
script makes on one node); everything else is the real script, accelerate launch and hfgpt."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from helpers import REPO, TINY_MODEL_FLAGS, launch_env, write_corpus

pytestmark = pytest.mark.slow


def test_preempted_job_requeues_and_the_requeued_job_continues(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/scontrol.log\n')
    (bin_dir / "scontrol").chmod(0o755)
    run_dir = tmp_path / "runs" / "job"
    env = launch_env({"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "SLURM_JOB_ID": "42",
                      "SLURM_JOB_NAME": "job", "SLURM_GPUS_ON_NODE": "1", "RUN_DIR": str(run_dir),
                      "ACCELERATE_CONFIG": "accelerate_configs/cpu.yaml"})
    corpus = write_corpus(tmp_path / "corpus", documents=10)
    flags = [*TINY_MODEL_FLAGS, "--train", str(corpus), "--max-steps", "400", "--ckpt-every", "0",
             "--trackers", "none", "--sample-tokens", "0", "--cache-dir", str(tmp_path / "cache")]
    script = str(REPO / "examples" / "slurm" / "train-1node.sbatch")

    job = subprocess.Popen(["bash", script, *flags], cwd=REPO, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    log = run_dir / "train_log.jsonl"
    deadline = time.monotonic() + 120
    while not (log.is_file() and log.read_text().count("\n") >= 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    job.send_signal(signal.SIGTERM)  # what --signal=B:TERM@120 does before the time limit
    output, _ = job.communicate(timeout=180)
    assert job.returncode == 0, output[-3000:]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "interrupted", output[-3000:]
    assert (tmp_path / "scontrol.log").read_text().split() == ["requeue", "42"]
    stopped_at = info["sessions"][-1]["end_step"]
    assert 0 < stopped_at < 400

    requeued = subprocess.run(["bash", script, *flags], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=600)
    assert requeued.returncode == 0, requeued.stdout[-3000:] + requeued.stderr[-3000:]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "completed"
    assert [s["start_step"] for s in info["sessions"]] == [0, stopped_at]
