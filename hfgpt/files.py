"""The ground floor under every file hfgpt writes, renames or deletes in folders it shares with people.

hfgpt only ever deletes what it made itself, which it knows by an exact name: `remove_made` takes the
pattern of the names hfgpt gives there and refuses any other name, and it never goes through a symlink (a
link is left alone, whatever it points at; a folder is deleted without following links inside it). Text
files are replaced through a temporary file and a rename, and never written through a link planted at
either name. A run name is a name inside `--rundir`, never a path (`check_run_name`). JSON written for people
and tools is strict JSON (`strict_json`).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import string
from pathlib import Path
from typing import Any

from .errors import HfGptError

NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)  # open() flag: fail on a symlink instead of writing where it points
# One part of a run name. No leading dot (hidden names beside a run are hfgpt's own, `.<run>.lock`), so
# neither `.` nor `..`, and no leading dash (it would read as a flag).
RUN_NAME_PART = re.compile(r"[A-Za-z0-9_+=@][A-Za-z0-9._+=@-]*")
_NAME_CHARACTERS = frozenset(string.ascii_letters + string.digits + "._-+=@")
_LONGEST_PART = 200  # leaves room in the 255-byte file name limit for `.<part>.replaced-<time>` beside it
_LONGEST_NAME = 1000


def run_name_problem(name: str) -> str:
    """Why `name` cannot name a run inside --rundir, or "" when it can."""
    if name.startswith("/"):
        return "it starts with /, so it is an absolute path"
    if len(name) > _LONGEST_NAME:
        return f"it is longer than {_LONGEST_NAME} characters"
    for part in name.split("/"):
        if not part:
            return "it has an empty part (a / at its start or end, or //)"
        if part in (".", ".."):
            return f"{part!r} is a step in a path, not a name"
        if not RUN_NAME_PART.fullmatch(part):
            odd = next((ch for ch in part if ch not in _NAME_CHARACTERS), None)
            return f"it holds {odd!r}" if odd else f"the part {part!r} starts with {part[0]!r}"
        if len(part) > _LONGEST_PART:
            return f"a part is longer than {_LONGEST_PART} characters"
    return ""


def check_run_name(name: str) -> None:
    """Refuse a --run-name that is not a plain name inside --rundir, before any work; "" means the default."""
    problem = run_name_problem(name) if name else ""
    if problem:
        raise HfGptError(
            f"--run-name {name!r} is not a valid run name ({problem}). A run name names a folder inside --rundir, "
            "never a path out of it: use letters, digits and ._-+=@, with / only between parts and no part "
            "starting with . or - (for example --run-name exp1/lr-3e-4).")


def remove_made(path: Path, made: re.Pattern[str], ignore_errors: bool = False) -> bool:
    """Delete `path`, a file or folder that hfgpt made, and say whether it did.

    `made` is the exact pattern of the names hfgpt gives at that place; any other name is a bug in the
    caller and raises ValueError. A symlink is left alone (it may point at anything, anywhere), and a
    folder is deleted without following the links inside it.
    """
    if not made.fullmatch(path.name):
        raise ValueError(f"refusing to delete {path}: hfgpt does not make {path.name!r} there")
    if path.is_symlink() or not path.exists():
        return False
    try:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    except OSError:
        if not ignore_errors:
            raise
    return True


def replace_text(path: Path, text: str) -> None:
    """Write `path` through a hidden temporary file and a rename: a crash leaves the old text or the new,
    never half of one, and a symlink at either name is replaced or refused, never written through."""
    temporary = path.with_name(f".{path.name}.tmp")
    with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | NO_FOLLOW, 0o666), "w",
              encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)


def aside_name(path: Path, label: str) -> Path:
    """Where to set a broken file or folder aside, never over an earlier one: `NAME.label`, then
    `NAME.label.2`, ..."""
    aside, copy = path.with_name(f"{path.name}.{label}"), 1
    while aside.exists() or aside.is_symlink():
        copy += 1
        aside = path.with_name(f"{path.name}.{label}.{copy}")
    return aside


def refuse_linked_cache(folder: Path, what: str) -> None:
    """A cache entry about to be rebuilt must be hfgpt's own folder: a link there is refused, not replaced."""
    if folder.is_symlink():
        raise HfGptError(
            f"The cached {what} {folder} is a symlink, and it must be built again (--reset, or it cannot be read). "
            "hfgpt never deletes through a link: remove the link yourself, or choose another --cache-dir.")



def strict_json(value: Any, **options: Any) -> str:
    """JSON that every reader accepts: a float that is not finite (a diverged loss, a missing norm) is written
    as null, since Python's NaN and Infinity are not JSON and strict parsers reject the whole file."""
    return json.dumps(_finite(value), allow_nan=False, **options)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value
