"""Shared fixtures: one real training run, reused by the tests that read what a run leaves behind.

Also the rule that keeps `pytest -m "not slow"` fast and true to the README: a test that starts a process
(a training launch, a child Python, a shell script), or that uses the session's `trained_run`, must be
marked slow. Collection refuses an unmarked test that requests `trained_run` (once the run exists, using it
starts nothing, so only its name can tell), and an unmarked test that starts a process fails when it does.
"""

from __future__ import annotations

import isolated_environment  # noqa: F401  (first: it sets the environment before huggingface_hub reads it)

# isort: split
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from helpers import TINY_MODEL_FLAGS, run_hfgpt, write_corpus
from warm_launch import WarmLauncher

SLOW_FIXTURES = {"trained_run"}  # fixtures that launch a training run


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    unmarked = [item.nodeid for item in items if SLOW_FIXTURES & set(getattr(item, "fixturenames", ()))
                and item.get_closest_marker("slow") is None]
    if unmarked:
        raise pytest.UsageError(f"these tests use {', '.join(sorted(SLOW_FIXTURES))}, which launches a training "
                                f"run, but are not marked @pytest.mark.slow: {', '.join(unmarked)}")


_running: list[pytest.Item] = []  # the test being set up, run or torn down


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _running[:] = [item]  # before its fixtures, which may launch processes too


def _start_only_in_slow_tests(start_child):
    def start(self, args, *rest, **kwargs):
        if _running and _running[0].get_closest_marker("slow") is None:
            program = args if isinstance(args, (str, bytes, os.PathLike)) else args[0]
            pytest.fail(f"{_running[0].nodeid} starts a process ({program}) "
                        "but is not marked @pytest.mark.slow, so `pytest -m \"not slow\"` would not skip it")
        return start_child(self, args, *rest, **kwargs)
    return start


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto` (pyproject.toml): a worker per core this process may use; xdist's own count is the physical
    cores', which is 1 on a 2-core machine of hyperthreads."""
    return len(os.sched_getaffinity(0))


def pin_to_own_cores() -> None:
    """An xdist worker keeps to its share of the cores, and so do the runs it launches (a child inherits the
    affinity, and hfgpt gives a CPU run a thread per core it may use): two workers each launching a run with a
    thread per core of the machine would crowd every core, and OpenMP's waiting threads slow such runs 8-15x."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not worker or not count:
        return
    cores = sorted(os.sched_getaffinity(0))
    mine = set(cores[int(worker.removeprefix("gw")) % len(cores)::int(count)])
    os.sched_setaffinity(0, mine)
    torch.set_num_threads(len(mine))


@pytest.fixture(autouse=True)
def whole_machine(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test marked `whole_machine` launches runs that use every core, as a user's do: several processes that
    share the cores, or a preset with its threads as shipped. Its worker lets them, for that test only."""
    if request.node.get_closest_marker("whole_machine") is None:
        yield
        return
    share = os.sched_getaffinity(0)
    os.sched_setaffinity(0, range(os.cpu_count() or 1))
    try:
        yield
    finally:
        os.sched_setaffinity(0, share)


def pytest_configure(config: pytest.Config) -> None:
    pin_to_own_cores()
    # matplotlib (loss.png) builds its font cache on its first use on a machine, running fc-list: let it do so
    # now, before the rule below, rather than inside whichever fast test draws first.
    import matplotlib.font_manager  # noqa: F401

    # Every subprocess.run/Popen/check_output goes through _execute_child; a warm launch forks from its server.
    subprocess.Popen._execute_child = _start_only_in_slow_tests(subprocess.Popen._execute_child)
    WarmLauncher.run = _start_only_in_slow_tests(WarmLauncher.run)


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
