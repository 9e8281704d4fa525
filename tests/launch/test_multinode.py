"""Two machines on one host: two `accelerate launch --num_machines 2 --machine_rank 0/1` of one CPU process each,
meeting at a static rendezvous on 127.0.0.1 over gloo, each with its own node-local cache (HFGPT_CACHE), sharing
the run folder as machines share a network file system. They train as 1 machine x 2 processes does, bitwise; when
one machine is lost mid-run (its launcher's process group and its process SIGKILLed at once) the other stops
within PEER_TIMEOUT, and `continue` on one machine of one process finishes the run within fp32 rounding."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import REPO, free_port, launch_env, rank_pids, run_hfgpt, without_cache_dir
from kills import ELASTIC_TOLERANCE, PEER_TIMEOUT, elastic_flags, send_kill
from recording import WORK, logged, recorder
from resume_helpers import MAX_STEPS, assert_same_run, checked, largest_relative_difference

pytestmark = [pytest.mark.slow, pytest.mark.whole_machine]  # launches of several processes


def flags(root: Path, name: str) -> list[str]:
    """elastic_flags (16 sequences a step, fp32, no dropout) checkpointing every step, the cache left to HFGPT_CACHE."""
    return without_cache_dir(elastic_flags(root, name, ckpt_every=1))


@pytest.fixture(scope="module")
def one_machine(tmp_path_factory) -> Path:
    """The reference: one machine of two processes."""
    root = tmp_path_factory.mktemp("one-machine")
    checked(run_hfgpt(flags(root, "one"), cwd=root, launcher="ddp2", env={"HFGPT_CACHE": str(root / "cache")}))
    return root / "runs" / "one"


def start_machines(root: Path, name: str) -> list[subprocess.Popen]:
    """Machines 0 and 1, each a launcher of one process in a process group of its own, each with its own cache."""
    port = free_port()
    machines = []
    for rank in (0, 1):
        command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                   str(REPO / "accelerate_configs" / "cpu-2proc.yaml"), "--num_machines", "2", "--num_processes",
                   "2", "--machine_rank", str(rank), "--main_process_ip", "127.0.0.1", "--main_process_port", port,
                   "--rdzv_backend", "static", *recorder(root), *flags(root, name)]
        machines.append(subprocess.Popen(command, cwd=root, start_new_session=True, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True,
                                         env=launch_env({"HFGPT_CACHE": str(root / f"cache-of-machine-{rank}")})))
    return machines


def test_two_machines_with_node_local_caches_train_as_one_machine_of_two_processes(tmp_path, one_machine):
    for machine in start_machines(tmp_path, "two"):
        stdout, stderr = machine.communicate(timeout=300)
        checked(subprocess.CompletedProcess(machine.args, machine.returncode, stdout, stderr))
    assert logged(tmp_path) == sorted(f"{rank} {what}" for rank in "01" for what in WORK), \
        "each machine's process tokenized once, into its own cache"
    assert_same_run(tmp_path / "runs" / "two", one_machine)


def test_a_lost_machine_stops_the_other_and_the_run_continues_on_one_machine(tmp_path, one_machine):
    survivor, lost = start_machines(tmp_path, "lost")
    log = tmp_path / "runs" / "lost" / "train_log.jsonl"
    deadline = time.monotonic() + 180
    while not (log.is_file() and log.read_text().count("\n") >= 6) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert survivor.poll() is None and lost.poll() is None, "both machines still train when one is lost"
    for pid in (*rank_pids(lost.pid).values(), lost.pid):  # the machine's process, then its launcher's group
        send_kill(pid)
    os.killpg(lost.pid, signal.SIGKILL)
    lost.wait()
    struck = time.monotonic()
    _, stderr = survivor.communicate(timeout=PEER_TIMEOUT + 60)
    stopped_after = time.monotonic() - struck
    print(f"the surviving machine stopped {stopped_after:.1f} s after the other was lost")
    assert stopped_after < PEER_TIMEOUT and "Process 1 of this run is gone" in stderr, stderr[-3000:]
    (tmp_path / "log.txt").unlink()
    one_machine_again = [sys.executable, *recorder(tmp_path), "continue", str(tmp_path / "runs" / "lost")]
    continued = checked(subprocess.run(one_machine_again, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                                       env=launch_env({"HFGPT_CACHE": str(tmp_path / "cache-of-machine-0")})))
    assert "continuing on 1 process(es) instead of 2" in continued.stdout
    assert not (tmp_path / "log.txt").exists(), "machine 0's cache held everything: nothing tokenized again"
    assert (tmp_path / "runs" / "lost" / "checkpoints" / f"step_{MAX_STEPS:08d}").is_dir()
    assert largest_relative_difference(tmp_path / "runs" / "lost", one_machine) < ELASTIC_TOLERANCE
