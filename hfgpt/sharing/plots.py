"""Plots of one or more runs from their `train_log.jsonl`: train and validation loss, learning rate and
throughput, against steps, tokens or wall time, several runs overlaid with a legend.

matplotlib draws with its Agg backend on a `Figure` of its own (no pyplot, no display, no global state), so a
plot can be drawn on a machine without a screen and from a background thread.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import HfGptError
from ..files import folders_for
from ..runs.rundir import LOSS_PLOT
from ..runs.summary import read_records

__all__ = ["LOSS_PLOT", "X_AXES", "plot_png", "plot_runs"]
X_AXES = {"step": "step", "tokens": "tokens seen", "time": "wall time (minutes)"}
SET_STYLES = ("--", ":", "-.", (0, (5, 1, 1, 1)))  # a validation set of a mixture, beside the mean
SET_MARKERS = ("s", "^", "v", "D", "x")


def _x_of(records: list[dict[str, Any]], axis: str) -> dict[int, float]:
    """step -> x for every step that has a record: the step itself, tokens seen, or minutes of training
    (the steps' own time added up, so that pauses between launches do not count)."""
    train = [r for r in records if r.get("split") == "train"]
    steps = sorted({int(r["step"]) for r in records})
    if axis == "step" or not train:
        return {step: float(step) for step in steps}
    if axis == "tokens":
        per_step = train[-1]["tokens"] / train[-1]["step"]
        return {step: step * per_step for step in steps}
    done, elapsed, known = 0, 0.0, {0: 0.0}
    for record in train:  # each record averages ms_per_step over the steps since the previous one
        elapsed += (record["step"] - done) * record["ms_per_step"] / 60_000
        done = record["step"]
        known[done] = elapsed
    return dict(zip(steps, np.interp(steps, list(known), list(known.values())).tolist(), strict=True))


def _validation_sets(records: list[dict[str, Any]]) -> list[str]:
    """The splits of a mixture's validation sets (valid/NAME), in the order the run logs them."""
    return list(dict.fromkeys(r["split"] for r in records if str(r.get("split", "")).startswith("valid/")))


def _tasks(records: list[dict[str, Any]]) -> list[str]:
    """The splits of the downstream tasks (task/NAME), in the order the run logs them."""
    return list(dict.fromkeys(r["split"] for r in records if str(r.get("split", "")).startswith("task/")))


def _series(records: list[dict[str, Any]], split: str, key: str, x: dict[int, float]) -> tuple[list, list]:
    points = [(x[int(r["step"])], r[key]) for r in records if r.get("split") == split
              and isinstance(r.get(key), (int, float)) and np.isfinite(r[key])]
    return [p[0] for p in points], [p[1] for p in points]


def plot_runs(run_dirs: list[Path], output: Path, x: str = "step", labels: list[str] | None = None) -> Path:
    """Draw the runs at `run_dirs` into the PNG file `output`, written through a hidden temporary file and a
    rename (never half a file for a card or a push), in the folders it lacks (made once the plot is drawn, and
    removed if the write fails); returns `output`."""
    png = plot_png(run_dirs, x, labels)
    with folders_for(output):
        temporary = output.with_name(f".{output.name}.tmp")
        temporary.write_bytes(png)
        os.replace(temporary, output)
    return output


def plot_png(run_dirs: list[Path], x: str = "step", labels: list[str] | None = None) -> bytes:
    """The plot of the runs at `run_dirs`, as PNG bytes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    logs = [read_records(run_dir) for run_dir in run_dirs]
    empty = [str(run_dir) for run_dir, records in zip(run_dirs, logs, strict=True) if not records]
    if empty:
        raise HfGptError(f"Nothing to plot for {', '.join(empty)}: no records in train_log.jsonl (a run logs "
                         "every --log-every steps). Give run directories made by `hfgpt train`.")
    figure = Figure(figsize=(11, 7.5), layout="constrained")
    FigureCanvasAgg(figure)
    with_tasks = any(_tasks(records) for records in logs)  # a panel of the tasks' accuracy, beside lr and speed
    grid = figure.add_gridspec(2, 3 if with_tasks else 2, height_ratios=(3, 2))
    loss, lr, speed = figure.add_subplot(grid[0, :]), figure.add_subplot(grid[1, 0]), figure.add_subplot(grid[1, 1])
    tasks = figure.add_subplot(grid[1, 2]) if with_tasks else None
    for index, (run_dir, records) in enumerate(zip(run_dirs, logs, strict=True)):
        name, color, xs = (labels or [])[index:index + 1] or [run_dir.name], f"C{index % 10}", _x_of(records, x)
        loss.plot(*_series(records, "train", "loss", xs), color=color, alpha=0.6, label=f"{name[0]} train")
        loss.plot(*_series(records, "valid", "loss", xs), "o-", color=color, markersize=3, label=f"{name[0]} valid")
        for number, split in enumerate(_validation_sets(records)):  # a mixture's: one line each, told by style
            loss.plot(*_series(records, split, "loss", xs), color=color, linestyle=SET_STYLES[number % len(SET_STYLES)],
                      marker=SET_MARKERS[number % len(SET_MARKERS)], markersize=3, label=f"{name[0]} {split}")
        for number, split in enumerate(_tasks(records) if tasks else []):
            tasks.plot(*_series(records, split, "acc", xs), color=color, marker=SET_MARKERS[number % len(SET_MARKERS)],
                       markersize=3, linestyle=SET_STYLES[number % len(SET_STYLES)], label=f"{name[0]} {split}")
        lr.plot(*_series(records, "train", "lr", xs), color=color, label=name[0])
        speed.plot(*_series(records, "train", "tokens_per_s", xs), color=color, label=name[0])
    values = [v for line in loss.get_lines() for v in line.get_ydata() if v > 0]
    if values and max(values) / min(values) > 5:  # the early loss would flatten everything after it
        loss.set_yscale("log")
    if tasks is not None:
        tasks.legend(fontsize="small")
    for axes, title in ((loss, "loss"), (lr, "learning rate"), (speed, "tokens / s"), (tasks, "task accuracy")):
        if axes is None:
            continue
        axes.set_title(title)
        axes.set_xlabel(X_AXES[x])
        axes.grid(alpha=0.3)
    loss.legend(fontsize="small")
    if len(run_dirs) > 1:
        lr.legend(fontsize="small")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()
