"""The rule of `--run-name`: a name inside `--rundir`, never a path out of it.

A run name is letters, digits and `._-+=@`, with `/` only between parts to group runs (exp1/lr-3e-4). No part
starts with a dot (hidden names beside a run are hfgpt's own, such as `.<run>.lock`), so neither `.` nor `..`,
and none with a dash (it would read as a flag).
"""

from __future__ import annotations

import re
import string

from ..errors import HfGptError

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
