"""Tracker names are checked against accelerate's, and installed, before a run does any work; the tracking seed's
W&B flags reach W&B, run for real offline and read back from its own file; Trackio logs locally."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import TINY_MODEL_FLAGS, import_or_unavailable, read_log, run_hfgpt, write_corpus
from tracker_records import trackio_metrics, wandb_run

import hfgpt.training.trackers
from hfgpt.config import build_config
from hfgpt.errors import HfGptError
from hfgpt.training.trackers import check_trackers, tracker_project, wandb_options, with_projects


def test_none_and_duplicates():
    assert check_trackers(["none"]) == [] and check_trackers([]) == []
    assert check_trackers(["tensorboard", "tensorboard"]) == ["tensorboard"]


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(HfGptError, match=r"--trackers foo: 'foo' is not a tracker that accelerate knows\. "
                                         r"Choose among .*tensorboard.*wandb.*, or none\."):
        check_trackers(["foo"])


def test_a_tracker_that_is_not_installed_names_what_to_install(monkeypatch):
    monkeypatch.setattr(hfgpt.training.trackers, "get_available_trackers", lambda: ["tensorboard"])
    with pytest.raises(HfGptError, match=r'asks for wandb, which is not installed here \(wandb: pip install '
                                         r'"hfgpt\[tracking\]"\)'):
        check_trackers(["tensorboard", "wandb"])


def test_train_refuses_an_unknown_tracker_before_it_reads_any_data(tmp_path, capsys):
    from hfgpt.cli import main

    missing = tmp_path / "no-such-text.txt"  # reading the data first would fail on this instead
    assert main(["train", "--trackers", "foo", "--train", str(missing), "--rundir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hfgpt: error: --trackers foo: 'foo' is not a tracker") and "Traceback" not in err


def test_the_seeds_wandb_flags_and_the_project(monkeypatch):
    cfg = build_config(["--wandb", "--wandb_project", "p", "--group", "g", "--job_type", "j", "--wandb_entity", "e",
                        "--wandb_mode", "offline", "--trackers", "none"])
    assert cfg.logging.trackers == ["wandb"]
    options = wandb_options(cfg.logging, "run-a", "id1", Path("logs"))
    assert options == {"project": "p", "name": "run-a", "id": "id1", "resume": "allow", "dir": "logs",
                       "entity": "e", "group": "g", "job_type": "j", "mode": "offline"}
    monkeypatch.setenv("WANDB_PROJECT", "from-env")
    assert tracker_project(build_config([]).logging) == "from-env"
    monkeypatch.delenv("WANDB_PROJECT")
    assert tracker_project(build_config([]).logging) == "hfgpt"
    assert "mode" not in wandb_options(build_config([]).logging, "r", "i", Path("l"))  # $WANDB_MODE decides


def test_wandb_and_trackio_become_trackers_of_their_project():
    cfg = build_config(["--wandb-project", "p"])
    trackers = with_projects(["tensorboard", "wandb", "trackio"], cfg.logging, "run-a", "id1", Path("logs"))
    assert trackers[0] == "tensorboard"
    assert (trackers[1].name, trackers[1].run_name, trackers[1].init_kwargs["name"]) == ("wandb", "p", "run-a")
    assert (trackers[2].name, trackers[2].run_name, trackers[2].init_kwargs) == \
        ("trackio", "p", {"name": "run-a", "resume": "allow"})


@pytest.mark.slow
def test_wandb_offline_records_the_config_metrics_project_and_resumed_id(tmp_path):
    import_or_unavailable("wandb")
    corpus = write_corpus(tmp_path / "c", documents=4)
    flags = [*TINY_MODEL_FLAGS, "--train", str(corpus), "--max-steps", "4", "--eval-every", "2", "--rundir",
             str(tmp_path / "runs"), "--run-name", "wb", "--cache-dir", str(tmp_path / "cache"), "--trackers", "none",
             "--wandb", "--wandb_project", "proj", "--group", "grp", "--job_type", "jt", "--wandb_mode", "offline",
             "--wandb_resume_id", "resume1"]
    env = {"WANDB_SILENT": "true"}  # the mode is --wandb_mode's
    first = run_hfgpt([*flags, "--stop-at-step", "2"], cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    run_dir = tmp_path / "runs" / "wb"
    assert json.loads((run_dir / "run.json").read_text())["wandb_id"] == "resume1"
    resumed = run_hfgpt(["continue", str(run_dir)], cwd=tmp_path, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    files = sorted((run_dir / "logs" / "wandb").glob("offline-run-*-resume1/run-resume1.wandb"))
    assert len(files) == 2, "both launches log to the W&B run of --wandb-resume-id"
    launches = [wandb_run(path) for path in files]
    for launch in launches:
        assert {k: launch[k] for k in ("project", "group", "job_type", "id", "name")} == \
            {"project": "proj", "group": "grp", "job_type": "jt", "id": "resume1", "name": "wb"}
        assert launch["config"]["training.max_steps"] == 4 and launch["config"]["logging.wandb_group"] == "grp"
    logged = [h["valid/loss"] for launch in launches for h in launch["history"] if "valid/loss" in h]
    assert logged == [r["loss"] for r in read_log(run_dir) if r["split"] == "valid"]


@pytest.mark.slow
def test_trackio_logs_locally_to_its_project_and_resumes_the_run(tmp_path):
    import_or_unavailable("trackio")
    corpus = write_corpus(tmp_path / "c", documents=4)
    env = {"TRACKIO_DIR": str(tmp_path / "trackio"), "WANDB_PROJECT": "tp"}
    flags = [*TINY_MODEL_FLAGS, "--train", str(corpus), "--max-steps", "4", "--log-every", "1", "--rundir",
             str(tmp_path / "runs"), "--run-name", "tk", "--cache-dir", str(tmp_path / "cache"), "--trackers",
             "trackio"]
    first = run_hfgpt([*flags, "--stop-at-step", "2"], cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    resumed = run_hfgpt(["continue", str(tmp_path / "runs" / "tk")], cwd=tmp_path, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    rows = trackio_metrics(tmp_path / "trackio" / "tp.db")
    train = [r for r in read_log(tmp_path / "runs" / "tk") if r["split"] == "train"]
    assert [(name, step, metrics["train/loss"]) for name, step, metrics in rows if "train/loss" in metrics] == \
        [("tk", r["step"], r["loss"]) for r in train]
