"""A 2-process run whose launcher or one of whose processes is SIGKILLed leaves nothing behind: within 30 s no
process of the run is alive, its lock is free, its newest checkpoint is intact, and `continue` ends bitwise equal
to the uninterrupted run. (The launcher starts each worker in a session of its own, so before hfgpt asked the
kernel for a SIGTERM at the launcher's death, a SIGKILL to the launcher's group left both workers training.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from helpers import alive, launch_command, launch_env, rank_pids, run_hfgpt, untimed_log
from resume_helpers import checked, exact_flags
from safetensors.torch import load_file

from hfgpt.launch.orphans import lost_process, stop_with_launcher
from hfgpt.runs.checkpoint import checkpoint_problem
from hfgpt.runs.lock import take_run_lock

STEPS = 40  # long enough that the run is still training when the kill strikes after its step-4 checkpoint


def flags(root: Path, name: str) -> list[str]:
    return [*exact_flags(root, name), "--max-steps", str(STEPS), "--eval-every", "0", "--no-log-samples"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("orphans")
    checked(run_hfgpt(flags(root, "reference"), cwd=root, launcher="ddp2"))
    return root


@pytest.mark.slow
@pytest.mark.whole_machine  # 2 DDP processes
@pytest.mark.parametrize("target", ["launcher's group", "launcher", "one worker"])
def test_a_kill_leaves_no_process_and_the_run_continues_bitwise(reference, target):
    root, name = reference, target.replace("'s", "").replace(" ", "-")
    run_dir = root / "runs" / name
    launcher = subprocess.Popen(launch_command(flags(root, name), "ddp2"), cwd=root, env=launch_env(),
                                start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    latest = run_dir / "checkpoints" / "latest.txt"
    deadline = time.monotonic() + 120
    while not (latest.is_file() and latest.read_text().strip() == "step_00000004") and time.monotonic() < deadline:
        time.sleep(0.01)
    ranks = rank_pids(launcher.pid)
    assert sorted(ranks) == [0, 1] and launcher.poll() is None, "still training when the kill strikes"
    {"launcher's group": lambda: os.killpg(launcher.pid, signal.SIGKILL),
     "launcher": lambda: os.kill(launcher.pid, signal.SIGKILL),
     "one worker": lambda: os.kill(ranks[1], signal.SIGKILL)}[target]()
    launcher.wait(timeout=60)
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in ranks.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in ranks.values() if alive(pid)], f"processes left after the kill of the {target}"
    take_run_lock(run_dir).release()  # the lock is free
    newest = run_dir / "checkpoints" / latest.read_text().strip()
    assert checkpoint_problem(newest) == "", "the newest checkpoint is intact"
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
    checked(run_hfgpt(["continue", str(run_dir)], cwd=root, launcher="ddp2"))
    last = f"checkpoints/step_{STEPS:08d}/model.safetensors"
    mine, theirs = load_file(run_dir / last), load_file(root / "runs" / "reference" / last)
    assert all(torch.equal(mine[key], theirs[key]) for key in theirs)
    assert untimed_log(run_dir) == untimed_log(root / "runs" / "reference")


def test_a_peer_gone_is_a_sentence_naming_it_and_other_errors_are_left_alone():
    closed = RuntimeError("[gloo/transport/tcp/pair.cc:537] Read error [127.0.0.1]:39847: Connection reset by peer.")
    sentence = lost_process(closed, rank=0, world_size=2, step=30)
    assert sentence.startswith("Process 1 of this run is gone: process 0 met its closed connection in a collective "
                               "after step 30") and "`hfgpt continue` goes on from it exactly" in sentence
    assert lost_process(closed, rank=2, world_size=4, step=3).startswith("Another of the 4 processes")
    assert lost_process(closed, rank=0, world_size=1, step=3) == ""
    assert lost_process(RuntimeError("CUDA out of memory"), rank=0, world_size=2, step=3) == ""
    assert lost_process(ValueError("Connection reset by peer"), rank=0, world_size=2, step=3) == ""


def test_only_a_launched_process_watches_its_launcher():
    assert not stop_with_launcher({"PATH": "/usr/bin"})
