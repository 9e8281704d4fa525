"""run.json: status, parent, versions and one session per launch, rewritten whole each time."""

from __future__ import annotations

import pytest

from hfgpt.runs.runinfo import (
    COMPLETED,
    INTERRUPTED,
    RUNNING,
    begin_session,
    end_session,
    new_run_info,
    package_versions,
    read_run_info,
    write_run_info,
)


def test_sessions_record_each_launch_and_the_status_follows_the_last(tmp_path):
    parent = {"source": "runs/base/final"}
    info = new_run_info("fork", {"training": {"max_steps": 8}}, world_size=2, parent=parent)
    begin_session(info, "fork", 0, {"training": {"max_steps": 8}})
    end_session(info, INTERRUPTED, 4, "SIGTERM received")
    write_run_info(tmp_path, info)

    again = read_run_info(tmp_path)
    begin_session(again, "continue", 4, {"training": {"max_steps": 8}})
    assert again["status"] == RUNNING
    end_session(again, COMPLETED, 8)
    write_run_info(tmp_path, again)

    saved = read_run_info(tmp_path)
    assert saved["status"] == COMPLETED and saved["parent"] == parent and saved["world_size"] == 2
    assert [(s["mode"], s["start_step"], s["end_step"], s["status"]) for s in saved["sessions"]] == [
        ("fork", 0, 4, INTERRUPTED), ("continue", 4, 8, COMPLETED)]
    assert saved["sessions"][0]["reason"] == "SIGTERM received" and "reason" not in saved["sessions"][1]
    assert saved["wandb_id"] == info["wandb_id"] and saved["updated"]


def test_package_versions_name_the_stack():
    versions = package_versions()
    assert {"python", "torch", "transformers", "accelerate", "hfgpt"} <= versions.keys()


def test_an_unreadable_record_is_set_aside_never_overwritten(tmp_path):
    assert read_run_info(tmp_path) is None
    for broken in ("{", "[]"):
        (tmp_path / "run.json").write_text(broken)
        with pytest.warns(UserWarning, match="run.json cannot be read .* set aside as run.json.unreadable"):
            assert read_run_info(tmp_path) is None
        assert not (tmp_path / "run.json").exists()
    assert (tmp_path / "run.json.unreadable").read_text() == "{"
    assert (tmp_path / "run.json.unreadable.2").read_text() == "[]"
