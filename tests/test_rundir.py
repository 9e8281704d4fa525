"""The run directory: its name, its creation (refusing to overwrite a run by accident), atomic text files."""

from __future__ import annotations

import re

import pytest
from accelerate import PartialState

from hfgpt.config import CheckpointSection
from hfgpt.errors import HfGptError
from hfgpt.rundir import create_run_dir, default_run_name, replace_text


def test_default_run_names_sort_by_start_time():
    assert re.fullmatch(r"\d{8}-\d{6}-.+", default_run_name())


def test_a_new_run_directory_is_created(tmp_path):
    run_dir = create_run_dir(CheckpointSection(rundir=str(tmp_path / "runs"), run_name="first"), PartialState())
    assert run_dir == tmp_path / "runs" / "first" and run_dir.is_dir()


def test_an_existing_run_is_refused_unless_overwrite(tmp_path):
    (tmp_path / "runs" / "taken").mkdir(parents=True)
    (tmp_path / "runs" / "taken" / "run.json").write_text("{}")
    section = CheckpointSection(rundir=str(tmp_path / "runs"), run_name="taken")
    with pytest.raises(HfGptError, match=r"already exists.*hfgpt continue .*--overwrite"):
        create_run_dir(section, PartialState())
    assert (tmp_path / "runs" / "taken" / "run.json").is_file()

    section.overwrite = True
    run_dir = create_run_dir(section, PartialState())
    assert run_dir.is_dir() and not any(run_dir.iterdir())


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
