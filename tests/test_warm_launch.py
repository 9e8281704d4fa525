"""The warm launches of the tests (tests/warm_launch.py) stand in for cold ones: a launch is forked from the server
only where nothing would tell the two apart, a worker of torchrun's is then the server's child, the signals torchrun
sends reach it, and it goes when the process torchrun started for it goes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers import alive, child_pids, launch_command, launch_env, rank_pids, tiny_run_flags, warm_launcher
from warm_launch import SCRIPT, launched_alike, script_arguments

SERVER_ENV = {"PATH": "/usr/bin", "HF_HOME": "/data/hf", "OMP_NUM_THREADS": "2"}
LAUNCHERS_VARIABLES = {"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": "29500", "TORCHELASTIC_RUN_ID": "none", "ACCELERATE_USE_FSDP": "true",
                       "FSDP_VERSION": "2", "PYTHONPATH": "/work", "PYTHON_EXEC": "/tmp/python"}


@pytest.mark.parametrize("change, alike", [
    ({}, True),
    (LAUNCHERS_VARIABLES, True),
    ({"PYTEST_CURRENT_TEST": "tests/test_x.py::test_y (call)"}, True),
    ({"PWD": "/elsewhere"}, False),  # what a shell between torchrun and python would add
    ({"HF_HOME": "/other"}, False),  # read at import: the server's would be stale
    ({"HF_HOME": None}, False),
    ({"OMP_NUM_THREADS": "1"}, False),  # a launcher's variable, but the server started with another value
], ids=["same", "a launcher's variables", "pytest's", "PWD", "HF_HOME changed", "HF_HOME removed",
        "OMP_NUM_THREADS changed"])
def test_a_launch_is_warm_only_where_its_environment_is_the_servers_up_to_a_launchers_variables(change, alike):
    env = {name: value for name, value in {**SERVER_ENV, **change}.items() if value is not None}
    assert launched_alike(env, SERVER_ENV) is alike


@pytest.mark.parametrize("argv, cwd, expected", [
    (["-u", str(SCRIPT), "--max-steps", "3"], "/", (True, [str(SCRIPT), "--max-steps", "3"])),
    ([str(SCRIPT)], "/", (False, [str(SCRIPT)])),
    (["recipes/train.py", "continue", "runs/a"], str(SCRIPT.parents[1]), (False, ["recipes/train.py", "continue",
                                                                                  "runs/a"])),
    (["-m", "accelerate.commands.launch", "--num_processes", "2", str(SCRIPT)], "/",
     (False, ["-m", "accelerate.commands.launch", "--num_processes", "2", str(SCRIPT)])),
    (["-X", "importtime", str(SCRIPT)], "/", None),  # an interpreter option the fork cannot give
    (["-m", "hfgpt.cli", "train"], "/", None),
    ([str(SCRIPT.parent / "other.py")], "/", None),
    ([], "/", None),
])
def test_only_the_training_script_and_accelerate_launch_with_at_most_python_u_are_forked(argv, cwd, expected):
    assert script_arguments(argv, cwd) == expected


def children(pid: int) -> set[int]:
    """The live processes whose parent is `pid`."""
    return {child for child in child_pids(pid) if alive(child)}


def start_warm(root: Path, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    """A 2-process `accelerate launch` whose workers torchrun starts through the warm server's client."""
    env = {**launch_env(env), "PYTHON_EXEC": str(warm_launcher().python)}
    return subprocess.Popen(launch_command(args, "ddp2"), cwd=root, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(condition, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting, after {seconds} s, for {what}"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.whole_machine  # 2 DDP processes
def test_torchruns_workers_are_the_servers_children_take_torchruns_signals_and_go_with_their_client(tmp_path):
    flags = tiny_run_flags(tmp_path, "warm", "--max-steps", "100000", "--ckpt-every", "0", "--eval-every", "0")
    log, server = tmp_path / "runs" / "warm" / "train_log.jsonl", warm_launcher().server.pid
    launch = start_warm(tmp_path, flags)
    wait_for(lambda: log.is_file() and log.read_text().count("\n") >= 3, "3 logged steps")
    assert len(children(server)) == 2, "each process of the run forked from the server"
    launch.send_signal(signal.SIGTERM)  # a preemption: torchrun passes it on to each worker it started
    _, stderr = launch.communicate(timeout=120)
    info = json.loads((tmp_path / "runs" / "warm" / "run.json").read_text())
    assert info["status"] == "interrupted" and info["sessions"][-1]["reason"] == "SIGTERM received", stderr[-3000:]

    launch = start_warm(tmp_path, ["continue", str(tmp_path / "runs" / "warm")])
    wait_for(lambda: log.read_text().count("\n") >= info["sessions"][-1]["end_step"] + 3, "3 more logged steps")
    forked, clients = children(server), rank_pids(launch.pid)
    assert len(forked) == 2 and sorted(clients) == [0, 1]
    os.kill(clients[1], signal.SIGKILL)  # rank 1's client dies: its child must not train on without it
    launch.communicate(timeout=120)
    wait_for(lambda: not children(server), "the forked processes to end", seconds=30)
    assert launch.returncode != 0


@pytest.mark.slow
@pytest.mark.whole_machine  # 2 DDP processes
def test_a_worker_whose_environment_the_server_did_not_import_under_starts_cold(tmp_path):
    flags = tiny_run_flags(tmp_path, "cold", "--max-steps", "100000", "--ckpt-every", "0", "--eval-every", "0")
    log = tmp_path / "runs" / "cold" / "train_log.jsonl"
    launch = start_warm(tmp_path, flags, env={"HFGPT_TESTS_UNSEEN": "1"})
    wait_for(lambda: log.is_file() and log.read_text().count("\n") >= 3, "3 logged steps")
    ranks = rank_pids(launch.pid)
    try:
        assert sorted(ranks) == [0, 1] and not children(warm_launcher().server.pid)
        for pid in ranks.values():  # torchrun's own children: the clients became the interpreters they start
            assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[1:3] == [b"-u", str(SCRIPT).encode()]
    finally:
        launch.send_signal(signal.SIGTERM)
        launch.communicate(timeout=120)
