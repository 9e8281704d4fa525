"""The run directory: its name, its creation and hold (refusing to overwrite a run, or to share it with a
second launch), atomic text files."""

from __future__ import annotations

import errno
import fcntl
import os
import re
import subprocess
import sys

import pytest
from accelerate import PartialState

from hfgpt.config import CheckpointSection
from hfgpt.errors import HfGptError
from hfgpt.rundir import claim_run_dir, default_run_name


def test_default_run_names_sort_by_start_time():
    assert re.fullmatch(r"\d{8}-\d{6}-.+", default_run_name())


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


def test_a_filesystem_without_locks_warns_and_goes_on(tmp_path, monkeypatch):
    def no_locks(handle, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)  # as on a Lustre mount without the flock option
    with pytest.warns(UserWarning, match="does not support locks"), claim(tmp_path, "lustre") as run_dir:
        assert run_dir.is_dir()
