"""A data mixture as the user writes it: training sources with weights (or weight schedules) and named
validation sets, parsed from `--train` and `--valid` (the same strings in a TOML `[data]` table).

    --train "books=shakespeare.txt:3,code/:1"           the share of training tokens: 3:1
    --train "shakespeare.txt:1,code/:1@0/1@0.8/4@1.0"   code's weight 1 until 80% of --max-steps, then up to 4
    --valid "a.txt,b.jsonl"                             two validation sets, each evaluated on its own

An item is `[NAME=]PATH[:WEIGHT]`; a source without NAME is named after its file or folder. An empty PATH is the
default corpus (Python's standard library, named `python`), as an empty `--train` is. WEIGHT is a number,
or `W@AT` points joined by `/`, linear in between and constant beyond the ends, where AT is a step (`800`) or,
written with a decimal point, a fraction of --max-steps (`0.8`). Without any weight, `--train` is one source, the
files in the order given, as it always was. The weights are relative: only their ratio at a step matters.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

import numpy as np

from ..config import DataSection
from ..errors import HfGptError
from ..files import short_hash

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_ITEM = re.compile(rf"(?:(?P<name>{_NAME.pattern})=)?(?P<path>.*?)(?::(?P<weight>[^:]*))?")


@dataclass(frozen=True)
class Schedule:
    """A source's weight over the steps: `(at, weight)` points, `at` a step (int) or a fraction of max_steps."""

    points: tuple[tuple[int | float, float], ...]

    def steps(self, max_steps: int) -> tuple[tuple[int, float], ...]:
        """The points with fractions turned into steps of a run of `max_steps`."""
        return tuple((round(at * max_steps) if isinstance(at, float) else at, weight) for at, weight in self.points)

    def at(self, steps: np.ndarray, max_steps: int) -> np.ndarray:
        """The weight at each of `steps` (float64), linear between the points, constant beyond the ends."""
        xs, ys = zip(*self.steps(max_steps), strict=True)
        return np.interp(steps, xs, ys)

    @property
    def constant(self) -> bool:
        return len({weight for _, weight in self.points}) == 1

    def describe(self) -> str:
        if self.constant:
            return f"{self.points[0][1]:g}"
        return " -> ".join(f"{weight:g}@{at}" for at, weight in self.points)


@dataclass(frozen=True)
class NamedPath:
    """One training source or validation set: its name in the logs, the files it reads, and its weight."""

    name: str
    path: str  # files and folders as --train/--valid take them (comma-free)
    schedule: Schedule | None = None  # None for a validation set


def mixture_sources(train: str, flag: str = "--train") -> list[NamedPath]:
    """The weighted sources of `train`, or [] when no item carries a weight (one plain source)."""
    items = _items(train, flag)
    weighted = [item for item in items if item[2] is not None]
    if not weighted:
        return []
    if len(weighted) != len(items):
        plain = next(path for _, path, weight in items if weight is None)
        raise HfGptError(f"{flag} gives weights to some sources but not to {plain!r}; give every source a weight "
                         f"(for example {plain}:1), or none to read them all as one source.")
    sources = [NamedPath(name, path, _schedule(weight, path, flag)) for name, path, weight in items]
    _check_names(sources, flag)
    return sources


def validation_sets(valid: str) -> list[NamedPath]:
    """The sets of `--valid`, each evaluated on its own; [] when it is empty."""
    sets = []
    for name, path, weight in _items(valid, "--valid"):
        if weight is not None:
            raise HfGptError(f"--valid item {path}:{weight} has a weight, but validation sets are not mixed: each is "
                             "evaluated on its own. Remove the ':" + weight + "'.")
        sets.append(NamedPath(name, path))
    _check_names(sets, "--valid")
    return sets


def check_schedules(sources: list[NamedPath], max_steps: int) -> None:
    """Refuse schedules that go backwards or leave every source at weight zero somewhere in the run."""
    if not sources:
        return
    for source in sources:
        assert source.schedule is not None
        steps = [at for at, _ in source.schedule.steps(max_steps)]
        if any(later <= earlier for earlier, later in itertools.pairwise(steps)):
            raise HfGptError(
                f"The weight schedule of source {source.name!r} ({source.schedule.describe()}) goes backwards or "
                f"repeats a point: at --max-steps {max_steps} its points fall on steps {steps}. Give the points in "
                "increasing order of step (a fraction such as 0.8 counts in --max-steps).")
    # The total weight is piecewise linear and never negative: zero inside a piece means zero at both its ends.
    ends = sorted({0, max_steps - 1, *(min(max(at, 0), max_steps - 1) for source in sources
                                       for at, _ in source.schedule.steps(max_steps))})
    totals = sum(source.schedule.at(np.array(ends), max_steps) for source in sources)
    if (totals <= 0).any():
        step = ends[int(np.argmax(totals <= 0))]
        raise HfGptError(f"Every source of --train has weight 0 at step {step}, so that step would read nothing. "
                         "Give at least one source a positive weight there.")


def schedules_key(schedules: tuple[Schedule, ...], max_steps: int) -> str:
    """What of a mixture's weights decides the blocks of each step: the points in steps, hashed."""
    return short_hash([schedule.steps(max_steps) for schedule in schedules])


def check_mixture(data: DataSection, max_steps: int) -> list[str]:
    """Everything about a mixture that can be wrong before any text is read (the syntax of --train and --valid, the
    schedules); returns the run's validation lines: valid, and valid/NAME for each set of a mixture."""
    sources, sets = mixture_sources(data.train), validation_sets(data.valid)
    check_schedules(sources, max_steps)
    names = [item.name for item in sets] if len(sets) > 1 or sources else []
    return ["valid", *(f"valid/{name}" for name in names or [source.name for source in sources])]


def _items(spec: str, flag: str) -> list[tuple[str, str, str | None]]:
    """(name, path, weight text or None) of each comma-separated item."""
    items = []
    for text in (part.strip() for part in spec.split(",")):
        if not text:
            continue
        match = _ITEM.fullmatch(text)
        if match is None or not (match["path"] or match["weight"] is not None):
            raise HfGptError(f"{flag} item {text!r} is not [NAME=]PATH[:WEIGHT]; for example books=data/books/:3.")
        path = match["path"]
        items.append((match["name"] or _name_of(path), path, match["weight"]))
    return items


def _name_of(path: str) -> str:
    """A source's name from its path: the file's stem, or the folder's name (also for nanoGPT's train.bin); the
    default corpus (an empty path) is `python`."""
    if not path:
        return "python"
    parts = path.rstrip("/\\").replace("\\", "/").split("/")
    stem = parts[-2] if parts[-1] in ("train.bin", "val.bin") and len(parts) > 1 else parts[-1]
    stem = stem.rsplit(".", 1)[0] if "." in stem[1:] else stem
    return re.sub(r"[^A-Za-z0-9_.-]", "_", stem).lstrip("._-") or "source"


def _schedule(text: str, path: str, flag: str) -> Schedule:
    """A weight (`3`) or weight points (`1@0/4@0.8`) as a Schedule."""
    points: list[tuple[int | float, float]] = []
    for point in text.split("/"):
        weight, _, at = point.partition("@")
        try:
            value = float(weight)
            position: int | float = 0 if not at else float(at) if "." in at else int(at)
        except ValueError:
            raise HfGptError(
                f"{flag} gives {path!r} the weight {text!r}, which is not a number (3) or a schedule of weight@step "
                "points (1@0/4@0.8: weight 1 at step 0, then linearly to 4 at 80% of --max-steps).") from None
        if not np.isfinite(value) or value < 0:
            raise HfGptError(f"{flag} gives {path!r} the weight {weight}; a weight is a share of the training tokens, "
                             "a finite number of 0 or more.")
        if (isinstance(position, float) and not 0 <= position <= 1) or (isinstance(position, int) and position < 0):
            raise HfGptError(f"{flag} puts a weight of {path!r} at {at!r}: a point is a step (800, 0 or more) or a "
                             "fraction of --max-steps between 0.0 and 1.0.")
        if not at and len(text.split("/")) > 1:
            raise HfGptError(f"{flag} schedule {text!r} of {path!r} has a point without @: write each one as "
                             "weight@step or weight@fraction, for example 1@0/4@0.8.")
        points.append((position, value))
    return Schedule(tuple(points))


def _check_names(items: list[NamedPath], flag: str) -> None:
    names = [item.name for item in items]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise HfGptError(f"{flag} names two items {twice[0]!r}; the logs tell them apart by name. Name them: "
                         f"NAME=PATH, for example {twice[0]}_2={next(i.path for i in items if i.name == twice[0])}.")


__all__ = ["NamedPath", "Schedule", "check_mixture", "check_schedules", "mixture_sources", "schedules_key",
           "validation_sets"]
