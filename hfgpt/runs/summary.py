"""What a run's files say about it, read without loading a model: its records (`train_log.jsonl`), its state
(run.json, the newest checkpoint), and the figures `hfgpt runs`, the plots and the model card show.

Reading never changes a run and never fails on a damaged file: what cannot be read is left out.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .checkpoint import complete_checkpoints
from .logbook import TRAIN_LOG
from .runinfo import RUN_INFO


def read_records(run_dir: Path) -> list[dict[str, Any]]:
    """The records of `train_log.jsonl`, skipping a line cut short (a run that is writing it, or crashed)."""
    records = []
    try:
        lines = (run_dir / TRAIN_LOG).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "step" in record:
            records.append(record)
    return records


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _seconds(stamp: str) -> float | None:
    try:
        return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S%z").timestamp()  # as runinfo writes them
    except (TypeError, ValueError):
        return None


@dataclass
class RunSummary:
    """A run's figures; None where its files do not say."""

    name: str
    status: str = "unknown"
    mode: str = "train"
    steps_done: int = 0
    max_steps: int | None = None
    best_loss: float | None = None
    best_step: int | None = None
    tokens: int | None = None
    wall_seconds: float = 0.0
    parent: str = ""
    updated: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    sessions: list[dict[str, Any]] = field(default_factory=list)
    valid: list[dict[str, Any]] = field(default_factory=list)  # the validation records
    valid_sets: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # a mixture's, by set name
    tasks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # --eval-tasks scores, by task name
    tokens_per_step: int | None = None
    versions: dict[str, str] = field(default_factory=dict)


def summarize(run_dir: Path) -> RunSummary:
    """The figures of the run at `run_dir`, from run.json, train_log.jsonl and its newest checkpoint."""
    info, records = read_json(run_dir / RUN_INFO), read_records(run_dir)
    summary = RunSummary(run_dir.name, status=str(info.get("status", "unknown")), mode=str(info.get("mode", "train")),
                         updated=str(info.get("updated", "")), config=info.get("config") or {},
                         sessions=list(info.get("sessions") or []), versions=info.get("versions") or {})
    summary.max_steps = summary.config.get("training", {}).get("max_steps")
    parent = info.get("parent") or {}
    summary.parent = str(parent.get("source", "")) if isinstance(parent, dict) else str(parent)
    summary.steps_done = max([int(s.get("end_step", 0) or 0) for s in summary.sessions] +
                             [int(r["step"]) for r in records] + [0])
    checkpoints = complete_checkpoints(run_dir) if (run_dir / "checkpoints").is_dir() else []
    state = read_json(checkpoints[-1] / "trainer_state.json") if checkpoints else {}
    train = [r for r in records if r.get("split") == "train" and r.get("tokens") and r["step"]]
    if train:
        summary.tokens_per_step = int(train[-1]["tokens"]) // int(train[-1]["step"])
    elif state.get("global_batch") and state.get("seq_len"):
        summary.tokens_per_step = int(state["global_batch"]) * int(state["seq_len"])
    if summary.tokens_per_step:
        summary.tokens = summary.steps_done * summary.tokens_per_step
    measured = [r for r in records if str(r.get("split", "")).startswith("valid")
                and isinstance(r.get("loss"), (int, float))]
    summary.valid = [r for r in measured if r["split"] == "valid"]
    for record in measured:
        if record["split"].startswith("valid/"):
            summary.valid_sets.setdefault(record["split"].removeprefix("valid/"), []).append(record)
    for record in records:
        if str(record.get("split", "")).startswith("task/"):
            summary.tasks.setdefault(record["split"].removeprefix("task/"), []).append(record)
    _find_best(summary)
    summary.wall_seconds = wall_seconds(summary.sessions)
    return summary


def _find_best(summary: RunSummary) -> None:
    """The best step as early stopping and best/ follow it (--best-metric): the lowest validation loss, or a task's
    highest centred score."""
    followed = summary.config.get("training", {}).get("best_metric", "valid")
    kind, _, name = followed.partition("/")
    records = summary.valid if followed == "valid" else (summary.valid_sets if kind == "valid" else summary.tasks).get(
        name, [])
    if records:
        best = min(records, key=lambda r: r["loss"] if kind == "valid" else -r["centred"])
        summary.best_step = int(best["step"])
        summary.best_loss = float(best["loss"]) if kind == "valid" else None


def wall_seconds(sessions: list[dict[str, Any]]) -> float:
    """The time the run's launches took, added up; a launch still running counts until now."""
    total = 0.0
    for session in sessions:
        start, end = _seconds(session.get("started", "")), _seconds(session.get("ended", ""))
        if start is not None:
            total += max(0.0, (end if end is not None else time.time()) - start)
    return total


def format_duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def find_runs(root: Path) -> list[Path]:
    """The run directories under `root` (run names may have parts: exp1/lr-3e-4), sorted by path."""
    found = {path.parent for path in root.rglob(RUN_INFO) if not path.parent.name.startswith(".")}
    if (root / RUN_INFO).is_file():
        found.add(root)
    return sorted(found)
