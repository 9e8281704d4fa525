"""What a task is: multiple-choice items, each a context, its choices and the index of the right one, read from a
local JSONL file (one item per line) or taken from a task that lm-evaluation-harness defines (hfgpt.tasks.harness).

    {"context": "The capital of France is", "choices": ["Paris", "Rome"], "label": 0, "id": "q1"}

`--tasks` (and `--eval-tasks`) name them comma-separated: a `.jsonl` path (named by its stem, or NAME=PATH), or
an lm-evaluation-harness task name such as `hellaswag`. A malformed line is refused with its file and line number.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import HfGptError

EXAMPLE = '{"context": "2 + 2 =", "choices": ["4", "5"], "label": 0}'


@dataclass(frozen=True)
class Item:
    """One question: the context, the choices that may follow it, the index of the right one; each choice is scored
    as `delimiter + choice` after the context (lm-evaluation-harness's target_delimiter, a space by default)."""

    context: str
    choices: tuple[str, ...]
    label: int
    delimiter: str = " "


@dataclass(frozen=True)
class Task:
    name: str
    items: tuple[Item, ...]
    origin: str  # the file, or "lm-evaluation-harness"

    @property
    def chance(self) -> float:
        """The accuracy of a guess, averaged over the items."""
        return sum(1 / len(item.choices) for item in self.items) / len(self.items)


@dataclass(frozen=True)
class TaskName:
    """A task as `--tasks` names it: a local file (`path`), or a name lm-evaluation-harness knows."""

    name: str
    path: Path | None


def task_names(spec: str, base: Path = Path()) -> list[TaskName]:
    """The tasks of a comma-separated `--tasks` value; relative paths start at `base`."""
    names = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        label, _, path = item.rpartition("=") if "=" in item else ("", "", item)
        if path.endswith(".jsonl") or (base / path).is_file():
            names.append(TaskName(label or Path(path).stem, (base / Path(path).expanduser()).resolve()))
        else:
            names.append(TaskName(label or path, None))
    seen = [task.name for task in names]
    twice = sorted({name for name in seen if seen.count(name) > 1})
    if twice:
        raise HfGptError(f"Two tasks are named {twice[0]!r}; name them apart with NAME=PATH.")
    return names


def read_task(name: str, path: Path, limit: int = 0) -> Task:
    """The items of a local JSONL task (the first `limit`, when given), each line checked."""
    if not path.is_file():
        raise HfGptError(f"The task file {path} does not exist. A local task is a .jsonl file of items such as "
                         f"{EXAMPLE}, one per line.")
    items = []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                items.append(_item(line, path, number))
            if limit and len(items) == limit:
                break
    if not items:
        raise HfGptError(f"The task file {path} holds no item; write one JSON object per line, such as {EXAMPLE}.")
    return Task(name, tuple(items), str(path))


def _item(line: str, path: Path, number: int) -> Item:
    where = f"{path}, line {number}"
    try:
        data = json.loads(line)
    except json.JSONDecodeError as error:
        raise HfGptError(f"{where} is not valid JSON ({error.msg}, column {error.colno}); each line is one item such "
                         f"as {EXAMPLE}.") from None
    if not isinstance(data, dict) or not {"context", "choices", "label"} <= data.keys():
        raise HfGptError(f"{where} is not an item: it needs the keys context, choices and label, as in {EXAMPLE}.")
    context, choices, label = data["context"], data["choices"], data["label"]
    if not isinstance(context, str) or not isinstance(choices, list) or len(choices) < 2 or \
            not all(isinstance(choice, str) for choice in choices):
        raise HfGptError(f"{where}: context must be a string and choices a list of at least two strings.")
    if not all(choice.strip() for choice in choices):
        raise HfGptError(f"{where}: choice {next(i for i, c in enumerate(choices) if not c.strip())} is empty; every "
                         "choice needs text to score.")
    if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label < len(choices):
        raise HfGptError(f"{where}: label {label!r} is not the index of one of its {len(choices)} choices "
                         f"(0 to {len(choices) - 1}).")
    return Item(context, tuple(choices), label)


__all__ = ["Item", "Task", "TaskName", "read_task", "task_names"]
