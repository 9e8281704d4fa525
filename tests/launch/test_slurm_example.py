"""examples/slurm/*.sbatch, run by bash as Slurm would: SIGTERM before the time limit checkpoints and
requeues, the requeued job continues the run to the end, and a run that has ended is not requeued.

There is no Slurm here: a stand-in `scontrol` on PATH records the requeue (the only Slurm call the
one-node script makes); everything else is the real script, accelerate launch and hfgpt. The multi-node
script needs srun and several nodes, so only its syntax is checked."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers import REPO, TINY_MODEL_FLAGS, launch_env, write_corpus

pytestmark = pytest.mark.slow

SCRIPTS = REPO / "examples" / "slurm"


@pytest.mark.parametrize("script", ["train-1node.sbatch", "train-multinode.sbatch"])
def test_the_scripts_are_valid_bash(script):
    result = subprocess.run(["bash", "-n", str(SCRIPTS / script)], capture_output=True, text=True)
    assert result.returncode == 0 and not result.stderr, result.stderr


def stand_in(bin_dir: Path, name: str, body: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
    (bin_dir / name).chmod(0o755)


def job_env(tmp_path: Path, run_dir: Path, **more: str) -> dict[str, str]:
    """Slurm's variables for one node, with the stand-ins in tmp_path/bin first on PATH; scontrol logs its
    arguments to tmp_path/scontrol.log."""
    stand_in(tmp_path / "bin", "scontrol", f'echo "$@" >> {tmp_path}/scontrol.log')
    return launch_env({"PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}", "SLURM_JOB_ID": "42",
                       "SLURM_JOB_NAME": "job", "SLURM_GPUS_ON_NODE": "1", "RUN_DIR": str(run_dir), **more})


def catches_sigterm(pid: int) -> bool:
    """Whether process `pid` has a SIGTERM handler (a bash trap) installed, as /proc shows."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    caught = int(next(line for line in status if line.startswith("SigCgt:")).split()[1], 16)
    return bool(caught >> (signal.SIGTERM - 1) & 1)


@pytest.mark.parametrize(("status", "requeued"), [("completed", False), ("stopped early", False),
                                                  ("interrupted", True)])
def test_a_job_whose_run_has_ended_is_not_requeued(tmp_path, status, requeued):
    """The time-limit SIGTERM reaches a job whose run.json already says how it ended: only a run that has
    not ended is requeued. A stand-in `accelerate` writes that run.json, then waits to be stopped."""
    run_dir = tmp_path / "runs" / "job"
    run_dir.mkdir(parents=True)
    stand_in(tmp_path / "bin", "accelerate",
             f"""echo '{{"status": "{status}"}}' > "$RUN_DIR/run.json"\nsleep 60 &\nwait""")
    job = subprocess.Popen(["bash", str(SCRIPTS / "train-1node.sbatch")], cwd=REPO, env=job_env(tmp_path, run_dir),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    while not ((run_dir / "run.json").is_file() and catches_sigterm(job.pid)) and time.monotonic() < deadline:
        time.sleep(0.01)
    job.send_signal(signal.SIGTERM)
    output, _ = job.communicate(timeout=60)
    assert job.returncode == 0, output
    log = tmp_path / "scontrol.log"
    assert (log.read_text().split() if log.is_file() else []) == (["requeue", "42"] if requeued else [])


@pytest.mark.whole_machine  # the requeued job launches 2 processes
def test_preempted_job_requeues_and_the_requeued_job_continues_on_the_gpus_it_gets(tmp_path):
    """Preempted on 1 process, requeued onto a node with 2: the script launches as many processes as the node has,
    and hfgpt continues the run on them (hfgpt.training.elastic)."""
    run_dir = tmp_path / "runs" / "job"
    env = job_env(tmp_path, run_dir, ACCELERATE_CONFIG="accelerate_configs/cpu.yaml")
    corpus = write_corpus(tmp_path / "corpus", documents=10)
    flags = [*TINY_MODEL_FLAGS, "--train", str(corpus), "--max-steps", "400", "--ckpt-every", "0",
             "--trackers", "none", "--sample-tokens", "0", "--cache-dir", str(tmp_path / "cache")]
    script = str(SCRIPTS / "train-1node.sbatch")

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

    two_gpus = job_env(tmp_path, run_dir, ACCELERATE_CONFIG="accelerate_configs/cpu-2proc.yaml",
                       SLURM_GPUS_ON_NODE="2")
    requeued = subprocess.run(["bash", script, *flags], cwd=REPO, env=two_gpus, capture_output=True, text=True,
                              timeout=600)
    assert requeued.returncode == 0, requeued.stdout[-3000:] + requeued.stderr[-3000:]
    assert "continuing on 2 process(es) instead of 1" in requeued.stdout
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "completed"
    assert [(s["processes"], s["start_step"]) for s in info["sessions"]] == [(1, 0), (2, stopped_at)]
