"""The tasks a run or `hfgpt eval` names, loaded: local JSONL files read and checked, lm-evaluation-harness names
checked against its registry and turned into items (hfgpt.tasks.harness), all before any training."""

from __future__ import annotations

from pathlib import Path

from .harness import check_known, harness_task
from .items import Task, read_task, task_names


def load_tasks(spec: str, limit: int = 0, task_dir: str = "", base: Path = Path()) -> list[Task]:
    """The tasks of a `--tasks`/`--eval-tasks` value, in its order, each cut to its first `limit` items when given."""
    local, named = split_tasks(spec, limit, task_dir, base)
    found = {task.name: task for task in local} | {name: harness_task(name, limit, task_dir) for name in named}
    return [found[task.name] for task in task_names(spec, base)]


def split_tasks(spec: str, limit: int = 0, task_dir: str = "", base: Path = Path()) -> tuple[list[Task], list[str]]:
    """The local tasks of `spec`, read and checked, and the names that lm-evaluation-harness must supply, checked
    against its registry."""
    names = task_names(spec, base)
    named = [task.name for task in names if task.path is None]
    if named:
        check_known(named, task_dir)
    return [read_task(task.name, task.path, limit) for task in names if task.path], named


def resolved(spec: str, base: Path = Path()) -> str:
    """`spec` with each local file as an absolute path, so that `continue` finds it from anywhere."""
    return ",".join(f"{task.name}={task.path}" if task.path else task.name for task in task_names(spec, base))


def names_of(spec: str) -> list[str]:
    """The task names of a `--tasks`/`--eval-tasks` value (for --best-metric task/NAME), without reading them."""
    return [task.name for task in task_names(spec)]


__all__ = ["load_tasks", "names_of", "resolved", "split_tasks"]
