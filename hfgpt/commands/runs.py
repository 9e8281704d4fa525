"""`hfgpt runs [RUNDIR]`: one line per run: name, status, steps, best validation loss, tokens, wall time,
parent and last update."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from ..errors import HfGptError

HEADER = ("run", "status", "steps", "best valid", "tokens", "time", "parent", "updated")


def runs(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog="hfgpt runs", description="List the runs under a folder.")
    parser.add_argument("rundir", nargs="?", default="runs", help="the folder that holds the runs (default: runs)")
    args = parser.parse_args(argv)

    from ..runs.summary import find_runs, format_duration, summarize

    root = Path(args.rundir)
    if not root.is_dir():
        raise HfGptError(f"{root} is not a folder; give the --rundir your runs are in (default: runs).")
    rows = [HEADER]
    for run_dir in find_runs(root):
        s = summarize(run_dir)
        rows.append((run_dir.relative_to(root).as_posix() if run_dir != root else run_dir.name, s.status,
                     f"{s.steps_done}/{s.max_steps if s.max_steps is not None else '?'}",
                     "-" if s.best_loss is None else f"{s.best_loss:.4f} @{s.best_step}",
                     "-" if s.tokens is None else f"{s.tokens:,}", format_duration(s.wall_seconds),
                     s.parent or "-", s.updated.replace("T", " ")[:19] or "-"))
    if len(rows) == 1:
        print(f"no runs under {root}")
        return
    widths = [max(len(row[column]) for row in rows) for column in range(len(HEADER))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
