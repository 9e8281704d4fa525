"""The run directory: its name (a name inside --rundir, never a path out of it), its creation and hold
(refusing to overwrite a run, or to share it with a second launch), and --overwrite, which replaces only an
hfgpt run and keeps the old one until the new one has a checkpoint."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import getpass
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from accelerate import PartialState
from helpers import snapshot

from hfgpt.cli import main
from hfgpt.config import RunSection
from hfgpt.config.run_names import check_run_name
from hfgpt.errors import HfGptError
from hfgpt.runs.rundir import claim_run_dir, default_run_name, drop_replaced_run, unknown_entries


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
    section = RunSection(rundir=str(tmp_path / "runs"), run_name=name, **options)
    return claim_run_dir(section, existing, PartialState())


def test_a_new_run_directory_is_created_and_held(tmp_path):
    with claim(tmp_path, "first") as run_dir:
        assert run_dir == tmp_path / "runs" / "first" and run_dir.is_dir()
        assert f"pid {os.getpid()}" in (tmp_path / "runs" / ".first.lock").read_text()


def fake_run(run_dir: Path, sealed: bool = False) -> Path:
    """What a run leaves: run.json, config.toml, tokenizer/, a log; `sealed`: a checkpoint with its manifest."""
    (run_dir / "tokenizer").mkdir(parents=True)
    (run_dir / "tokenizer" / "tokenizer.json").write_text("{}")
    for name in ("run.json", "config.toml", "train_log.jsonl"):
        (run_dir / name).write_text(f"the {name} of {run_dir.name}\n")
    if sealed:
        (run_dir / "checkpoints" / "step_00000001").mkdir(parents=True)
        (run_dir / "checkpoints" / "step_00000001" / "checkpoint.json").write_text("{}")
    return run_dir


def test_an_existing_run_is_refused_without_overwrite(tmp_path):
    fake_run(tmp_path / "runs" / "taken")
    before = snapshot(tmp_path / "runs" / "taken")
    with pytest.raises(HfGptError, match=r"already exists.*hfgpt continue .*--overwrite"), claim(tmp_path, "taken"):
        pass
    assert snapshot(tmp_path / "runs" / "taken") == before


TINY = ["--dim", "32", "--heads", "2", "--layers", "2", "--seq", "32", "--batch", "4", "--max-steps", "1",
        "--trackers", "none", "--no-progress-bar"]


@pytest.mark.parametrize(("name", "overwrite"), [("..", True), ("../escape", False), ("{tmp}/abs/where", False),
                                                 ("x;rm -rf y", True), ("~/x", False)])
def test_a_run_name_that_is_a_path_is_refused_before_anything_is_touched(tmp_path, monkeypatch, capsys, name,
                                                                           overwrite):
    """The issue's repro: `--run-name .. --overwrite` deleted the folder above --rundir with all it held."""
    name = name.format(tmp=tmp_path)  # an absolute name, but inside the sandbox, should the check ever fail
    monkeypatch.chdir(tmp_path)
    fake_run(tmp_path / "parent" / "runs" / "keepme")
    (tmp_path / "parent" / "precious.txt").write_text("precious\n")
    (tmp_path / "s.txt").write_text("To be, or not to be, that is the question.\n" * 40)
    before = snapshot(tmp_path)
    flags = ["--train", "s.txt", "--rundir", "parent/runs", "--run-name", name, "--cache-dir", "cache", *TINY]
    assert main(["train", *flags, *(["--overwrite"] if overwrite else [])]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"hfgpt: error: --run-name {name!r} is not a valid run name (") and \
        error.count("\n") == 1, error
    assert snapshot(tmp_path) == before


def test_a_run_continued_through_a_link_is_locked_as_itself(tmp_path):
    """`continue runs/alias` and `continue runs/real` are one run: they must take one lock."""
    real = fake_run(tmp_path / "runs" / "real")
    (tmp_path / "runs" / "alias").symlink_to(real, target_is_directory=True)
    with claim(tmp_path, "", tmp_path / "runs" / "alias"):
        assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [".real.lock", "alias", "real"]


def test_a_run_name_that_leads_out_of_rundir_through_a_symlink_is_refused(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "exp1").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(HfGptError, match=r"--run-name exp1/x leads to .*elsewhere/x, outside --rundir"), \
            claim(tmp_path, "exp1/x"):
        pass
    assert not any(elsewhere.iterdir())


def test_a_run_directory_that_is_a_symlink_is_refused_even_with_overwrite(tmp_path):
    real = fake_run(tmp_path / "runs" / "real")
    (tmp_path / "runs" / "alias").symlink_to(real, target_is_directory=True)
    before = snapshot(tmp_path)
    for overwrite in (False, True):
        with pytest.raises(HfGptError, match=r"runs/alias is a symlink"), claim(tmp_path, "alias", overwrite=overwrite):
            pass
    assert snapshot(tmp_path) == before


def test_a_file_where_the_run_directory_would_go_is_refused(tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "x").write_text("mine")
    with pytest.raises(HfGptError, match=r"runs/x is a file, not a run directory"), \
            claim(tmp_path, "x", overwrite=True):
        pass
    assert (tmp_path / "runs" / "x").read_text() == "mine"


def test_overwrite_refuses_a_folder_that_is_not_an_hfgpt_run(tmp_path):
    (tmp_path / "runs" / "notes").mkdir(parents=True)
    (tmp_path / "runs" / "notes" / "todo.txt").write_text("mine")
    (tmp_path / "runs" / "notes" / "checkpoints").mkdir()
    with pytest.raises(HfGptError, match=r"--overwrite replaces only an hfgpt run, and .*runs/notes is not one"), \
            claim(tmp_path, "notes", overwrite=True):
        pass
    assert (tmp_path / "runs" / "notes" / "todo.txt").read_text() == "mine"


def test_overwrite_refuses_a_run_that_holds_what_hfgpt_did_not_write_and_names_it(tmp_path):
    run_dir = fake_run(tmp_path / "runs" / "x")
    for name in ("data.csv", "notes.txt", "z1", "z2", "z3"):
        (run_dir / name).write_text("mine")
    (run_dir / "paper").mkdir()
    before = snapshot(run_dir)
    with pytest.raises(HfGptError, match=r"holds what hfgpt did not write there \(data\.csv, notes\.txt, paper, z1, "
                                         r"z2 and 1 more\)"), claim(tmp_path, "x", overwrite=True):
        pass
    assert snapshot(run_dir) == before and not list(run_dir.parent.glob(".x.replaced-*"))


def test_every_name_hfgpt_writes_in_a_run_may_be_replaced(tmp_path):
    """The staging and set-aside names of every module count as hfgpt's own; nothing else does."""
    run_dir = fake_run(tmp_path / "runs" / "x")
    for name in (".run.json.tmp", "run.json.unreadable", "run.json.unreadable.2", ".config.toml.tmp",
                 ".train_log.jsonl.tmp", "samples.jsonl", ".samples.jsonl.tmp", ".best.tmp", ".best.old",
                 ".final.tmp", ".final.old"):
        (run_dir / name).write_text("")
    for name in ("architecture", "checkpoints", "logs", "best", "final"):
        (run_dir / name).mkdir(exist_ok=True)
    assert unknown_entries(run_dir) == []
    (run_dir / ".final.older").write_text("")
    (run_dir / "run.json.unreadable.x").write_text("")
    assert unknown_entries(run_dir) == [".final.older", "run.json.unreadable.x"]


def test_overwrite_keeps_the_old_run_aside_until_the_new_one_has_a_checkpoint(tmp_path, capsys):
    old = snapshot(fake_run(tmp_path / "runs" / "x"))
    with claim(tmp_path, "x", overwrite=True) as run_dir:
        [aside] = (tmp_path / "runs").glob(".x.replaced-*")
        assert re.fullmatch(r"\.x\.replaced-\d{8}-\d{6}", aside.name) and snapshot(aside) == old
        assert run_dir == tmp_path / "runs" / "x" and not any(run_dir.iterdir())
        assert f"replacing the run {run_dir} (kept as {aside} until the new run's first checkpoint)" in \
            capsys.readouterr().out
        drop_replaced_run(run_dir)
        assert aside.exists(), "no checkpoint yet"
        fake_run(run_dir, sealed=True)
        drop_replaced_run(run_dir)  # what the loop does after every checkpoint
        assert not aside.exists()
    assert (run_dir / "checkpoints" / "step_00000001").is_dir()


@pytest.mark.parametrize("failure", [None, ValueError])
def test_a_new_run_that_ends_before_its_first_checkpoint_puts_the_old_one_back(tmp_path, capsys, failure):
    old = snapshot(fake_run(tmp_path / "runs" / "x"))
    with contextlib.suppress(ValueError), claim(tmp_path, "x", overwrite=True) as run_dir:
        fake_run(run_dir)  # the new run got as far as its run.json and tokenizer
        (run_dir / "checkpoints" / ".step_00000001.tmp").mkdir(parents=True)
        if failure:
            raise failure("bad data")
    assert snapshot(tmp_path / "runs" / "x") == old
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["x"]  # the lock file went with the launch
    assert f"{run_dir} is back as it was" in capsys.readouterr().out


def test_a_launch_killed_while_replacing_a_run_is_repaired_by_the_next_one(tmp_path):
    runs = tmp_path / "runs"
    # Killed before the new run's first checkpoint: the next claim removes it and puts the old one back.
    old = snapshot(fake_run(runs / ".x.replaced-20260101-120000"))
    (runs / "x" / "tokenizer").mkdir(parents=True)
    with pytest.raises(HfGptError, match="already exists"), claim(tmp_path, "x"):
        pass
    assert snapshot(runs / "x") == old and not (runs / ".x.replaced-20260101-120000").exists()
    # Killed after it: the new run is kept (here continued) and the old copy dropped.
    fake_run(runs / ".y.replaced-20260101-120000")
    new = snapshot(fake_run(runs / "y", sealed=True))
    with claim(tmp_path, "y", runs / "y"):
        pass
    assert snapshot(runs / "y") == new and not (runs / ".y.replaced-20260101-120000").exists()


def test_a_failed_fresh_launch_leaves_no_empty_run_directory(tmp_path):
    with contextlib.suppress(ValueError), claim(tmp_path, "fresh"):
        raise ValueError("no such --train file")
    assert not (tmp_path / "runs" / "fresh").exists()


@pytest.mark.parametrize("rundir", ["runs", "new/runs"])
def test_a_launch_refused_before_its_run_existed_leaves_nothing(tmp_path, monkeypatch, capsys, rundir):
    """The issue's repro: `hfgpt train --data-path missing.txt --run-name b1` left .b1.lock (and a new --rundir)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    before = snapshot(tmp_path)
    assert main(["train", "--data-path", "missing.txt", "--run-name", "b1", "--rundir", rundir, "--cache-dir",
                 "cache", *TINY]) == 2
    assert "missing.txt" in capsys.readouterr().err and snapshot(tmp_path) == before


def test_a_finished_launch_leaves_its_run_and_no_lock_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.txt").write_text("To be, or not to be, that is the question.\n" * 40)
    flags = ["--train", "s.txt", "--cache-dir", "cache", "--sample-tokens", "0", *TINY]
    assert main(["train", *flags, "--rundir", "runs/exp1", "--run-name", "done"]) == 0
    assert main(["continue", "runs/exp1/done", "--max-steps", "2", "--trackers", "none", "--no-progress-bar"]) == 0
    assert [p.name for p in (tmp_path / "runs" / "exp1").iterdir()] == ["done"]


def test_the_default_run_name_is_a_valid_one_whatever_the_user_name(monkeypatch):
    monkeypatch.setattr(getpass, "getuser", lambda: "CORP\\ann smith")
    name = default_run_name()
    check_run_name(name)
    assert name.endswith("-CORP-ann-smith")


HOLD = """
import sys, time
from pathlib import Path
from accelerate import PartialState
from hfgpt.config import RunSection
from hfgpt.runs.rundir import claim_run_dir
with claim_run_dir(RunSection(rundir=sys.argv[1], run_name="busy"), None, PartialState()):
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


def test_a_filesystem_without_locks_warns_and_goes_on(tmp_path, monkeypatch):
    def no_locks(handle, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)  # as on a Lustre mount without the flock option
    with pytest.warns(UserWarning, match="does not support locks"), claim(tmp_path, "lustre") as run_dir:
        assert run_dir.is_dir()
