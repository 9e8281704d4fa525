"""`hfgpt plot RUN [RUN ...]`: the loss, learning rate and throughput of one or more runs in one PNG."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from ..errors import HfGptError


def plot(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog="hfgpt plot", description="Plot runs from their train_log.jsonl: train "
                                     "and validation loss, learning rate and tokens/s, overlaid with a legend.")
    parser.add_argument("runs", nargs="+", metavar="RUN", help="run directories")
    parser.add_argument("--output", default="", help="the PNG to write, in the folders it lacks (made); default: "
                                                    "RUN/loss.png for one run, runs.png here for several")
    parser.add_argument("--x", default="step", choices=("step", "tokens", "time"),
                        help="the x axis: optimizer steps, tokens seen, or minutes of training")
    args = parser.parse_args(argv)

    from ..sharing.plots import plot_runs

    runs = [Path(run) for run in args.runs]
    missing = [str(run) for run in runs if not (run / "train_log.jsonl").is_file()]
    if missing:
        raise HfGptError(f"{', '.join(missing)}: no train_log.jsonl; give run directories made by `hfgpt train`.")
    output = Path(args.output) if args.output else runs[0] / "loss.png" if len(runs) == 1 else Path("runs.png")
    print(f"wrote {plot_runs(runs, output, args.x)}")
