"""The ground floor of every write and delete: deletion of only what hfgpt made (never through a symlink),
text files replaced whole and never written through a link, folders published whole, and JSON that strict
readers accept."""

from __future__ import annotations

import json
import math
import re

import pytest

from hfgpt.files import aside_name, folders_for, remove_made, replace_text, strict_json

MADE = re.compile(r"\.step_\d{8,}\.tmp")


def test_remove_made_deletes_only_a_name_hfgpt_gives(tmp_path):
    (tmp_path / ".step_00000001.tmp" / "sub").mkdir(parents=True)
    (tmp_path / "notes.txt").write_text("mine")
    assert remove_made(tmp_path / ".step_00000001.tmp", MADE)
    assert not (tmp_path / ".step_00000001.tmp").exists()
    with pytest.raises(ValueError, match=r"hfgpt does not make 'notes\.txt' there"):
        remove_made(tmp_path / "notes.txt", MADE)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert not remove_made(tmp_path / ".step_00000002.tmp", MADE)  # nothing there


def test_remove_made_never_goes_through_a_symlink(tmp_path):
    """A link with hfgpt's name is left alone, and so is what a link inside a folder of hfgpt's points at."""
    precious = tmp_path / "precious"
    (precious / "deep").mkdir(parents=True)
    (precious / "deep" / "data.txt").write_text("keep")
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    (checkpoints / ".step_00000001.tmp").symlink_to(precious, target_is_directory=True)
    (checkpoints / ".step_00000002.tmp").mkdir()
    (checkpoints / ".step_00000002.tmp" / "inside").symlink_to(precious, target_is_directory=True)
    assert not remove_made(checkpoints / ".step_00000001.tmp", MADE)
    assert remove_made(checkpoints / ".step_00000002.tmp", MADE)
    assert (checkpoints / ".step_00000001.tmp").is_symlink()
    assert (precious / "deep" / "data.txt").read_text() == "keep"


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


def test_replace_text_never_writes_through_a_symlink(tmp_path):
    """A link planted at the temporary name is refused; one at the file's name is replaced, not followed."""
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".run.json.tmp").symlink_to(outside)
    with pytest.raises(OSError):
        replace_text(run_dir / "run.json", "{}")
    (run_dir / ".run.json.tmp").unlink()
    (run_dir / "config.toml").symlink_to(outside)
    replace_text(run_dir / "config.toml", "[model]\n")
    assert outside.read_text() == "precious"
    assert not (run_dir / "config.toml").is_symlink() and (run_dir / "config.toml").read_text() == "[model]\n"


def test_aside_names_never_take_an_earlier_one_or_a_dangling_link(tmp_path):
    path = tmp_path / "run.json"
    (tmp_path / "run.json.unreadable").write_text("first")
    (tmp_path / "run.json.unreadable.2").symlink_to(tmp_path / "nowhere")
    assert aside_name(path, "unreadable").name == "run.json.unreadable.3"



def strict_loads(text: str):
    """json.loads that refuses NaN and Infinity, as JavaScript's JSON.parse and jq do."""
    def refuse(constant: str):
        raise ValueError(f"{constant} is not JSON")
    return json.loads(text, parse_constant=refuse)


def test_non_finite_numbers_become_null_at_any_depth():
    value = {"loss": math.nan, "ppl": math.inf, "ok": 1.5, "nested": [{"g": -math.inf}, 2], "t": (math.nan,)}
    assert strict_loads(strict_json(value)) == {"loss": None, "ppl": None, "ok": 1.5, "nested": [{"g": None}, 2],
                                               "t": [None]}


def test_plain_json_would_not_be_readable_by_a_strict_parser():
    with pytest.raises(ValueError, match="NaN is not JSON"):
        strict_loads(json.dumps({"loss": math.nan}))


def test_folders_for_makes_what_a_path_lacks_and_a_failure_removes_only_those_left_empty(tmp_path):
    with folders_for(tmp_path / "a" / "b" / "out.png"):
        assert (tmp_path / "a" / "b").is_dir()
    assert (tmp_path / "a" / "b").is_dir(), "kept after a write that worked"
    with pytest.raises(OSError), folders_for(tmp_path / "x" / "y" / "z" / "out.png"):
        raise OSError("disk full")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]
    with pytest.raises(ValueError), folders_for(tmp_path / "x" / "y" / "out.png"):
        (tmp_path / "x" / "keep.txt").write_text("mine")  # someone else's file, in a folder made here
        raise ValueError("bad plot")
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["keep.txt"]
