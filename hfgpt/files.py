"""The ground floor under every file hfgpt writes, renames or deletes in folders it shares with people.

hfgpt only ever deletes what it made itself, which it knows by an exact name: `remove_made` takes the
pattern of the names hfgpt gives there and refuses any other name, and it never goes through a symlink (a
link is left alone, whatever it points at; a folder is deleted without following links inside it). Text
files are replaced through a temporary file and a rename, and never written through a link planted at
either name. A folder is published whole: written under a staging name and renamed into place (`publish`).
JSON written for people and tools is strict JSON (`strict_json`); caches and manifests name content by its
hash (`short_hash`, `sha256_of`). A path the user names for a command to write (`--output`) gets the folders it
lacks, and a command that fails removes those it made (`folders_for`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import HfGptError

NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)  # open() flag: fail on a symlink instead of writing where it points
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


def short_hash(value: object) -> str:
    """16 hex digits of SHA-256 of a string or of JSON with sorted keys: stable names for caches."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def sha256_of(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def fsync(path: Path) -> None:
    """Flush a file, or a folder's entry list, to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(staging: Path, final: Path) -> bool:
    """Put a folder written under a staging name in place with one rename, so that `final` is never seen
    half-written; says whether ours is the one in place. The first to publish wins: an existing `final` is
    another process's result for the same inputs, and ours stays at `staging` for the caller to drop."""
    try:
        os.rename(staging, final)
    except OSError:
        if not final.is_dir():
            raise
        return False
    return True


def replace_published(staging: Path, final: Path, made: re.Pattern[str]) -> None:
    """Put `staging` in place of `final` (if any) with two renames: the old copy goes to `.<name>.old` and is
    deleted after the swap; a crash in between leaves it for `recover_published`. `made` is the pattern of
    the staging and old names there, the only ones this deletes."""
    old = final.with_name(f".{final.name}.old")
    if final.exists():
        remove_made(old, made, ignore_errors=True)  # left by a swap cut short after its rename
        os.replace(final, old)
    os.replace(staging, final)
    remove_made(old, made, ignore_errors=True)


def recover_published(final: Path, made: re.Pattern[str]) -> None:
    """Undo what a `replace_published` cut short: put the old copy back if the swap stopped between
    its two renames, else drop the stale old copy; and drop a staging copy left half-written."""
    old, staging = final.with_name(f".{final.name}.old"), final.with_name(f".{final.name}.tmp")
    if old.is_dir() and not old.is_symlink() and not final.exists():
        os.replace(old, final)
    remove_made(old, made, ignore_errors=True)
    remove_made(staging, made, ignore_errors=True)


def missing_folders(folder: Path) -> list[Path]:
    """`folder` and those above it that do not exist yet, outermost first: the ones that making it makes."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing[::-1]


def remove_empty(folders: list[Path]) -> None:
    """Remove `folders` (outermost first) from the innermost out, stopping at the first that holds anything."""
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:  # not empty, or gone
            return


@contextlib.contextmanager
def folders_for(path: Path) -> Iterator[None]:
    """Make the folders that `path` lacks, for the block to write it; if the block fails, remove the ones made
    here that it left empty, so that a command that fails leaves nothing behind."""
    made = missing_folders(path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except BaseException:
        remove_empty(made)
        raise
