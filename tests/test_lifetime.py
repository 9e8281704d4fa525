"""Children that must not outlive their parent do not: a process that asked for a signal at its parent's death gets
it, and a single-process run SIGKILLed while it tokenizes in --num-proc workers leaves none of them running."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import REPO

pytestmark = pytest.mark.slow

CHILD = ("import signal, time; from hfgpt.lifetime import signal_at_parent_death; "
         "signal_at_parent_death(signal.SIGKILL); print('ready', flush=True); time.sleep(120)")
PARENT = f"""
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", {CHILD!r}], stdout=subprocess.PIPE, text=True)
child.stdout.readline()
print(child.pid, flush=True)
time.sleep(120)
"""


def gone(pid: int, within: float) -> bool:
    """Whether `pid` has exited (or is a zombie) within `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return True
        except OSError:
            return True
        time.sleep(0.1)
    return False


def descendants(pid: int) -> list[int]:
    rows = [line.split() for line in subprocess.run(["ps", "-eo", "pid,ppid"], capture_output=True,
                                                     text=True).stdout.splitlines()[1:]]
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = [int(child) for child, ppid in rows if int(ppid) == parent]
        found += children
        frontier += children
    return found


def test_a_child_is_signalled_when_its_parent_dies():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    assert gone(child, within=5), "the child outlived its parent"


def test_a_run_killed_while_it_tokenizes_leaves_no_worker(tmp_path):
    rng = random.Random(0)
    (tmp_path / "big.txt").write_text("".join(rng.choice("abcdefghij klmnop\n") for _ in range(12_000_000)))
    run = subprocess.Popen([sys.executable, str(REPO / "recipes" / "train.py"), "--train", "big.txt", "--num-proc",
                            "2", "--max-steps", "5", "--cache-dir", "cache", "--rundir", "runs", "--trackers", "none",
                            "--no-progress-bar"], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(children := descendants(run.pid)) < 3 and time.monotonic() < deadline:  # two workers, their tracker
        time.sleep(0.2)
    assert len(children) >= 3 and run.poll() is None, "killed while it tokenizes"
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    assert all(gone(pid, within=10) for pid in children), "a tokenizing worker outlived the run"
