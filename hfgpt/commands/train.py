"""`hfgpt train`, `hfgpt continue RUN_DIR` and `hfgpt fork SOURCE`: the three ways to start training, with one
set of flags (`hfgpt train --help` lists them)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def _start(mode: str, argv: Sequence[str]) -> None:
    if "-h" in argv or "--help" in argv:  # the flag reference needs the config schema only, not torch
        from ..config import USAGES, format_help

        print(format_help(f"hfgpt {mode}", USAGES[mode]))
        return
    from ..training import modes
    from ..training.trainer import run

    run(getattr(modes, f"{mode}_setup")(argv))


def train(argv: Sequence[str]) -> None:
    """A new run."""
    _start("train", argv)


def continue_run(argv: Sequence[str]) -> None:
    """A run resumed from its newest complete checkpoint; a Hub id is first downloaded into --rundir."""
    if argv and not argv[0].startswith("-"):
        from ..sharing.hub import looks_like_hub_id

        if looks_like_hub_id(argv[0]):
            argv = [str(_from_hub(argv[0], _rundir(argv[1:]))), *argv[1:]]
    _start("continue", argv)


def _rundir(flags: Sequence[str]) -> Path:
    """The --rundir given among `flags` (--rundir X or --rundir=X), else runs."""
    for index, flag in enumerate(flags):
        if flag in ("--rundir", "--run.rundir") and index + 1 < len(flags):
            return Path(flags[index + 1])
        if flag.startswith(("--rundir=", "--run.rundir=")):
            return Path(flag.partition("=")[2])
    return Path("runs")


def _from_hub(repo_id: str, rundir: Path) -> Path:
    """The run pushed to `repo_id`, as a run directory under `rundir` (downloaded once; later continues use it)."""
    import sys

    from ..sharing.hub import download_run

    run_dir = rundir / repo_id.rpartition("/")[2]
    if (run_dir / "config.toml").is_file():
        print(f"continuing {run_dir}, the copy of {repo_id} downloaded before", file=sys.stderr)
        return run_dir
    print(f"downloading the run pushed to {repo_id} into {run_dir} ...", file=sys.stderr)
    return download_run(repo_id, run_dir)


def fork(argv: Sequence[str]) -> None:
    """A new run from a saved model's weights and tokenizer."""
    _start("fork", argv)
