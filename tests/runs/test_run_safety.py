"""Whatever run name, --rundir and --overwrite a user types, hfgpt changes nothing outside the run it trains.

A property-based test throws generated names (plain, nested, and hostile: `..`, absolute, `~`, `//`, a
leading dash, shell syntax, unicode, very long) and rundirs (relative, nested, a symlink to elsewhere) at
`train`, `fork` and `continue`, run in-process in a sandbox that holds a precious file, a run-looking folder
with a file of the user's in it, and a real tiny run. It compares the whole sandbox before and after: only the
intended run directory (and its lock file and new parent folders) may change, and every refusal is one
`hfgpt: error:` paragraph with exit status 2, never a traceback.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import traceback
from pathlib import Path
from unittest import mock

import pytest
from helpers import snapshot
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hfgpt.cli import main
from hfgpt.config.run_names import run_name_problem

pytestmark = pytest.mark.slow

TINY = ["--dim", "32", "--heads", "2", "--layers", "2", "--seq", "32", "--batch", "4", "--max-steps", "1",
        "--eval-every", "0", "--sample-tokens", "0", "--no-progress-bar", "--ckpt-every", "0", "--trackers", "none"]
TEXT = "To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer.\n" * 12
RUNDIRS = ["parent/runs", "parent/runs/nested/deeper", "link-runs", "{sandbox}/parent/runs"]
HOSTILE = ["..", "../x", "../../escape", "/abs", "~/x", "a//b", "-x", "a/-rf", "x;rm -rf y", "$(touch pwned)",
           "ünïcode", ".", "", "x" * 300, "exp/../..", "real/..", "a/.", ".hidden", ".real.lock", "a\\b",
           "out/x", "alias", "keepme", "real", "exp1/lr-3e-4", "back\nslash"]
PART = r"[A-Za-z0-9_+=@][A-Za-z0-9._+=@-]{0,8}"
NAMES = st.one_of(st.sampled_from(HOSTILE), st.from_regex(rf"{PART}(/{PART}){{0,2}}", fullmatch=True),
                  st.text(max_size=12))


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> tuple[Path, str]:
    """The sandbox every example starts from, with a real tiny run trained once, and the data cache (outside
    the sandbox) that every example shares."""
    root = tmp_path_factory.mktemp("template")
    cache = tmp_path_factory.mktemp("cache")
    (root / "s.txt").write_text(TEXT)
    (root / "parent" / "runs").mkdir(parents=True)
    (root / "parent" / "precious.txt").write_text("precious\n")
    keepme = root / "parent" / "runs" / "keepme"  # looks like a run, but holds a file of the user's
    keepme.mkdir()
    (keepme / "run.json").write_text("{}\n")
    (keepme / "notes.txt").write_text("months of notes\n")
    (root / "elsewhere").mkdir()
    (root / "elsewhere" / "other.txt").write_text("not hfgpt's\n")
    (root / "link-runs").symlink_to("elsewhere", target_is_directory=True)
    (root / "parent" / "runs" / "out").symlink_to("../../elsewhere", target_is_directory=True)
    os.chdir(root)
    try:
        assert main(["train", "--train", "s.txt", "--rundir", "parent/runs", "--run-name", "real",
                     "--cache-dir", str(cache), *TINY]) == 0
    finally:
        os.chdir(Path(__file__).parent)
    (root / "parent" / "runs" / "alias").symlink_to("real", target_is_directory=True)
    return root, str(cache)


def command(mode: str, rundir: str, name: str, overwrite: bool, cache: str) -> list[str]:
    common = ["--cache-dir", cache, *(["--overwrite"] if overwrite else [])]
    if mode == "continue":
        return ["continue", f"{rundir}/{name}", "--max-steps", "2", "--no-progress-bar", *common]
    new_run = ["--train", "s.txt", "--rundir", rundir, f"--run-name={name}", *TINY, *common]
    return ["train", *new_run] if mode == "train" else ["fork", "parent/runs/real", *new_run]


def intended_run(sandbox: Path, mode: str, rundir: str, name: str) -> Path | None:
    """The resolved run directory this launch may change, or None where it must be refused."""
    if mode == "continue":
        path = sandbox / f"{rundir}/{name}"  # an absolute rundir stays itself
        try:
            return path.resolve() if (path / "config.toml").is_file() and (path / "tokenizer").is_dir() else None
        except OSError:  # a name too long to look up
            return None
    name = name or "default-run"
    base = (sandbox / rundir).resolve()
    if run_name_problem(name) or (sandbox / rundir / name).is_symlink():
        return None
    run_dir = (base / name).resolve()
    return run_dir if base in run_dir.parents else None


def may_change(path: Path, run_dir: Path | None, added: bool) -> bool:
    """Inside the run, its lock file, or (when added) a folder on the way to it."""
    if run_dir is None:
        return False
    return (path == run_dir or run_dir in path.parents or path == run_dir.parent / f".{run_dir.name}.lock"
            or (added and path in run_dir.parents))


@given(mode=st.sampled_from(["train", "fork", "continue"]), rundir=st.sampled_from(RUNDIRS), name=NAMES,
       overwrite=st.booleans())
@example(mode="train", rundir="parent/runs", name="..", overwrite=True)  # the repro
@example(mode="train", rundir="parent/runs", name="real", overwrite=True)  # replaces the real run
@example(mode="train", rundir="parent/runs", name="keepme", overwrite=True)  # refused: notes.txt is the user's
@example(mode="fork", rundir="link-runs", name="exp1/lr-3e-4", overwrite=False)  # through a linked rundir
@example(mode="train", rundir="parent/runs", name="out/x", overwrite=False)  # out/ links outside --rundir
@example(mode="continue", rundir="parent/runs", name="real", overwrite=True)
@example(mode="continue", rundir="parent/runs", name="alias", overwrite=False)  # a link to the real run
@settings(max_examples=50, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_nothing_outside_the_intended_run_changes(template, tmp_path_factory, capsys, mode, rundir, name, overwrite):
    origin, cache = template
    sandbox = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp())).resolve() / "sandbox"
    shutil.copytree(origin, sandbox, symlinks=True)
    rundir = rundir.format(sandbox=sandbox)
    run_dir = intended_run(sandbox, mode, rundir, name)
    before = snapshot(sandbox)
    capsys.readouterr()
    os.chdir(sandbox)
    try:
        with mock.patch("hfgpt.runs.rundir.default_run_name", return_value="default-run"):
            status = main(command(mode, rundir, name, overwrite, cache))
    except BaseException:  # any escape is the failure this test looks for
        pytest.fail(f"{mode} {rundir!r} {name!r}: not a one-paragraph error but\n{traceback.format_exc()}")
    finally:
        os.chdir(Path(__file__).parent)
    err = capsys.readouterr().err
    after = snapshot(sandbox)

    changed = {key for key in before.keys() & after.keys() if before[key] != after[key]}
    removed, added = before.keys() - after.keys(), after.keys() - before.keys()
    outside = sorted(key for key in changed | removed | added
                     if not may_change(sandbox / key, run_dir, added=key in added))
    assert not outside, f"{mode} {rundir!r} {name!r} (status {status}) changed {outside}\n{err[-2000:]}"
    assert not any(".replaced-" in key for key in after), "a replaced run outlived its launch"
    assert status in (0, 2) and "Traceback" not in err
    if status == 2:
        errors = re.findall(r"^hfgpt: error: .*$", err, flags=re.MULTILINE)
        assert len(errors) == 1 and err.endswith(errors[0] + "\n"), err[-2000:]
    if run_dir is None:
        assert status == 2, f"{mode} {rundir!r} {name!r} should have been refused"
        if mode != "continue" and run_name_problem(name or "default-run"):
            assert "is not a valid run name" in err
    elif status == 0:
        assert (run_dir / "run.json").is_file() and (run_dir / "checkpoints").is_dir()
