"""The run directory: its name, its creation and hold (refusing to overwrite a run, or to share it with a
second launch), atomic text files."""

from __future__ import annotations

import errno
import fcntl
import os
import subprocess
import sys
import time

import pytest
from accelerate import PartialState

from hfgpt.config import CheckpointSection
from hfgpt.errors import HfGptError
from hfgpt.rundir import claim_run_dir, default_run_name, replace_text


def test_default_run_names_sort_by_start_time(monkeypatch):
    real_strftime = time.strftime
    starts = ["2026-01-09 23:59:59", "2026-01-10 00:00:00", "2026-01-10 09:30:00", "2026-01-10 10:05:00",
              "2026-02-01 08:00:00", "2027-01-01 00:00:00"]
    names = []
    for start in starts:  # in time order
        moment = time.strptime(start, "%Y-%m-%d %H:%M:%S")
        monkeypatch.setattr(time, "strftime", lambda fmt, when=moment: real_strftime(fmt, when))
        names.append(default_run_name())
    assert sorted(names) == names and len(set(names)) == len(names)


def claim(tmp_path, name: str, existing=None, **options):
    section = CheckpointSection(rundir=str(tmp_path / "runs"), run_name=name, **options)
    return claim_run_dir(section, existing, PartialState())


def test_a_new_run_directory_is_created_and_held(tmp_path):
    with claim(tmp_path, "first") as run_dir:
        assert run_dir == tmp_path / "runs" / "first" and run_dir.is_dir()
        assert f"pid {os.getpid()}" in (tmp_path / "runs" / ".first.lock").read_text()


def test_an_existing_run_is_refused_unless_overwrite(tmp_path):
    (tmp_path / "runs" / "taken").mkdir(parents=True)
    (tmp_path / "runs" / "taken" / "run.json").write_text("{}")
    with pytest.raises(HfGptError, match=r"already exists.*hfgpt continue .*--overwrite"), claim(tmp_path, "taken"):
        pass
    assert (tmp_path / "runs" / "taken" / "run.json").is_file()
    with claim(tmp_path, "taken", overwrite=True) as run_dir:
        assert run_dir.is_dir() and not any(run_dir.iterdir())


HOLD = """
import sys, time
from pathlib import Path
from accelerate import PartialState
from hfgpt.config import CheckpointSection
from hfgpt.rundir import claim_run_dir
with claim_run_dir(CheckpointSection(rundir=sys.argv[1], run_name="busy"), None, PartialState()):
    print("holding", flush=True)
    time.sleep(60)
"""


@pytest.mark.slow
def test_a_run_held_by_another_launch_is_refused_until_that_one_ends(tmp_path):
    """A real second process holds the run; even --overwrite must not delete it under that process."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "runs")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        (tmp_path / "runs" / "busy" / "step").write_text("saved by the first launch")
        for existing in (None, tmp_path / "runs" / "busy"):  # train --overwrite, continue
            with pytest.raises(HfGptError, match=rf"in use by another hfgpt launch \(pid {holder.pid} on "), \
                    claim(tmp_path, "busy", existing, overwrite=True):
                pass
        assert (tmp_path / "runs" / "busy" / "step").is_file()
    finally:
        holder.kill()
        holder.wait()
    with claim(tmp_path, "busy", tmp_path / "runs" / "busy") as run_dir:  # a killed holder leaves no stale lock
        assert (run_dir / "step").is_file()


def test_replace_text_swaps_whole_files_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "run.json"
    replace_text(path, "old\n")
    replace_text(path, "new\n")
    assert path.read_text() == "new\n" and [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_a_failed_replace_text_keeps_the_old_text(tmp_path):
    path = tmp_path / "latest.txt"
    replace_text(path, "step_00000002\n")
    with pytest.raises(UnicodeEncodeError):
        replace_text(path, "step_\udc80")  # fails while writing the temporary file
    assert path.read_text() == "step_00000002\n"


def test_a_filesystem_without_locks_warns_and_goes_on(tmp_path, monkeypatch):
    def no_locks(handle, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)  # as on a Lustre mount without the flock option
    with pytest.warns(UserWarning, match="does not support locks"), claim(tmp_path, "lustre") as run_dir:
        assert run_dir.is_dir()
