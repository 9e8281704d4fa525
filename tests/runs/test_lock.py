"""The run lock: one holder at most, a lock file removed as its launch ends and never while another launch may
hold it (the race of removing a flock file, played out step by step and by processes that hammer one lock),
and the folders made for it removed when left empty.

flock locks belong to an open file, not to a process: two handles opened in one process exclude each other as two
processes do, so most of the protocol is tested in this process."""

from __future__ import annotations

import errno
import fcntl
import os
import subprocess
import sys

import pytest

from hfgpt.errors import HfGptError
from hfgpt.runs.lock import lock_path, take_run_lock


def held_file(lock) -> tuple[int, int]:
    stat = os.fstat(lock.handle.fileno())
    return stat.st_dev, stat.st_ino


def named_file(path) -> tuple[int, int]:
    stat = os.stat(path)
    return stat.st_dev, stat.st_ino


def test_the_lock_file_names_its_holder_and_goes_with_it(tmp_path):
    run_dir = tmp_path / "runs" / "a"
    lock = take_run_lock(run_dir)
    path = tmp_path / "runs" / ".a.lock"
    assert lock.path == path == lock_path(run_dir) and f"pid {os.getpid()} on " in path.read_text()
    lock.release()
    assert not path.exists() and not (tmp_path / "runs").exists(), "the folder made for it, empty, goes too"


def test_a_held_run_is_refused_naming_the_holder_until_it_is_let_go(tmp_path):
    first = take_run_lock(tmp_path / "a")
    with pytest.raises(HfGptError, match=rf"is in use by another hfgpt launch \(pid {os.getpid()} on "):
        take_run_lock(tmp_path / "a")
    assert named_file(first.path) == held_file(first), "the refused launch left the holder's file alone"
    first.release()
    second = take_run_lock(tmp_path / "a")
    second.release()
    assert list(tmp_path.iterdir()) == []


def test_a_launch_that_opened_the_file_as_its_holder_removed_it_locks_the_new_one(tmp_path, monkeypatch):
    """A holds; B opens the lock file; A ends (removes the name, lets go); B's flock succeeds on the removed file.
    Unchecked, B would hold a file no name leads to, and C, creating a new one, would hold the run too."""
    a = take_run_lock(tmp_path / "run")
    real_flock, flocked = fcntl.flock, []

    def a_ends_first(handle, operation):  # between B's open and B's flock
        if a.handle is not None:
            a.release()
        flocked.append(os.fstat(handle.fileno()).st_nlink)  # 0: a file that no name leads to
        return real_flock(handle, operation)

    monkeypatch.setattr(fcntl, "flock", a_ends_first)
    b = take_run_lock(tmp_path / "run")
    monkeypatch.setattr(fcntl, "flock", real_flock)
    assert flocked == [0, 1], "B locked the removed file, found it gone from the name, and locked the new one"
    assert held_file(b) == named_file(b.path)
    with pytest.raises(HfGptError, match="in use by another hfgpt launch"):
        take_run_lock(tmp_path / "run")  # C
    b.release()


def test_a_file_left_by_a_killed_launch_is_taken_over_and_removed(tmp_path):
    (tmp_path / ".run.lock").write_text("pid 1 on gone, since 2026-01-01 00:00:00\n")
    lock = take_run_lock(tmp_path / "run")
    assert "pid 1 on gone" not in lock.path.read_text()
    lock.release()
    assert not lock.path.exists()


def test_a_holder_never_removes_a_file_that_is_not_its_own(tmp_path):
    """Someone removed a held lock file by hand and a second launch made a new one: the first, ending, keeps it."""
    first = take_run_lock(tmp_path / "run")
    first.path.unlink()
    second = take_run_lock(tmp_path / "run")
    first.release()
    assert named_file(second.path) == held_file(second)
    second.release()


def test_only_empty_folders_that_the_launch_made_are_removed(tmp_path):
    (tmp_path / "runs").mkdir()
    lock = take_run_lock(tmp_path / "runs" / "exp1" / "deep" / "x")
    assert lock.made == [tmp_path / "runs" / "exp1", tmp_path / "runs" / "exp1" / "deep"]
    (tmp_path / "runs" / "exp1" / "notes.txt").write_text("mine")
    lock.release()
    assert sorted(p.name for p in (tmp_path / "runs").rglob("*")) == ["exp1", "notes.txt"]


def test_on_a_filesystem_without_locks_no_lock_file_is_left(tmp_path, monkeypatch):
    def no_locks(handle, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with pytest.warns(UserWarning, match="does not support locks"):
        lock = take_run_lock(tmp_path / "runs" / "x")
    assert lock.handle is None and list((tmp_path / "runs").iterdir()) == []
    lock.release()
    assert not (tmp_path / "runs").exists()


HAMMER = """
import os, sys
from pathlib import Path
from hfgpt.errors import HfGptError
from hfgpt.runs.lock import take_run_lock

run_dir, inside, rounds = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
held = 0
while held < rounds:
    try:
        lock = take_run_lock(run_dir)
    except HfGptError:
        continue
    try:
        os.close(os.open(inside, os.O_CREAT | os.O_EXCL))  # fails if another holder is inside too
    except FileExistsError:
        sys.exit("two holders at once")
    os.unlink(inside)
    lock.release()
    held += 1
"""


@pytest.mark.slow
def test_processes_taking_and_removing_one_lock_never_hold_it_together(tmp_path):
    """Three processes take the lock 300 times each; each holder creates a marker only one may hold."""
    args = [str(tmp_path / "runs" / "x"), str(tmp_path / "inside"), "300"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    workers = [subprocess.Popen([sys.executable, "-c", HAMMER, *args], env=env, stderr=subprocess.PIPE, text=True)
               for _ in range(3)]
    errors = [worker.communicate(timeout=120)[1] for worker in workers]
    assert errors == [""] * 3 and [worker.returncode for worker in workers] == [0] * 3
    # The folder stays if the launch that made it ended while another held the lock; the lock file never does.
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []
