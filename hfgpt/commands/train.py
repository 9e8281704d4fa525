"""`hfgpt train`, `hfgpt continue RUN_DIR` and `hfgpt fork SOURCE`: the three ways to start training, with one
set of flags (`hfgpt train --help` lists them)."""

from __future__ import annotations

from collections.abc import Sequence


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
    """A run resumed from its newest complete checkpoint."""
    _start("continue", argv)


def fork(argv: Sequence[str]) -> None:
    """A new run from a saved model's weights and tokenizer."""
    _start("fork", argv)
