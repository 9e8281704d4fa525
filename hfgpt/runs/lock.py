"""The lock that keeps a run to one launch: `.<run-name>.lock` beside the run directory, held with flock(2)
from the claim of the run to the end of the launch, and removed then, so that launches leave no lock files
behind (also one refused before its run directory existed). The OS lets go of a lock when its process ends
however it ends; only a launch killed with SIGKILL leaves the file, holding nothing, which the next launch on
the run takes over and removes.

Removing a lock file is the classic race of flock locking: a launch B opens the file, the holder A removes the
name and lets go, B's flock then succeeds on a file that no name leads to any more, while a launch C creates a
new file at the name and locks that one: two holders. This protocol keeps removal safe:

- take: open the name (creating the file if there is none), flock it (LOCK_EX | LOCK_NB: a busy lock is
  refused, never waited for), then check that the name still leads to the file just locked (the same device
  and inode); if it does not, the file was removed after it was opened: close it and start again.
- release: remove the name while still holding the lock, then close the file.

Why one holder at most: a file leaves the name only while its holder holds it (and at that moment stops being
the holder), and a launch holds only a file that the name led to after its flock succeeded. So if A holds F,
the name leads to F until A removes it; B locking F fails until A lets go, and by then the name no longer leads
to F, so B's check sends it back to the start; B opening another file G finds G at the name only after A
removed F, when A holds nothing any more.

The folders made on the way to the lock file (a new --rundir, a group like `exp1/`) are removed again when the
launch ends, if it left them empty. A launch that takes the lock meanwhile may find its folder gone between
making it and opening the file there: it makes it again (a folder with a lock file in it is not empty, so it
is never removed from under one).
"""

from __future__ import annotations

import errno
import os
import socket
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ..errors import HfGptError
from ..files import NO_FOLLOW, missing_folders, remove_empty

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

_ATTEMPTS = 100  # tries to find the file at the name still there once locked; each miss is another launch's end


@dataclass
class RunLock:
    """A launch's hold on its run: the lock file's name, its open file (None where nothing is locked: no flock
    on this system or filesystem), and the folders this launch made for it, outermost first."""

    path: Path
    handle: IO[str] | None
    made: list[Path] = field(default_factory=list)

    def release(self) -> None:
        """Remove the lock file while still holding it, then let go; then the folders made for it, if empty."""
        if self.handle is not None:
            if _still_at(self.handle, self.path):  # never another launch's file, should someone have removed ours
                self.path.unlink()
            self.handle.close()
            self.handle = None
        remove_empty(self.made)  # one that holds a run or another launch's lock file stays


def lock_path(run_dir: Path) -> Path:
    """The lock file of a run, one however the run is reached (`continue` through a link to it)."""
    where = run_dir.resolve()
    return where.parent / f".{where.name}.lock"


def take_run_lock(run_dir: Path) -> RunLock:
    """Hold the run at `run_dir` for this launch (see the module docstring), or refuse: another launch holds it."""
    path = lock_path(run_dir)
    lock = RunLock(path, None, missing_folders(path.parent))
    if fcntl is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        return lock  # no flock here (Windows): launches are not guarded against each other
    for _attempt in range(_ATTEMPTS):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)  # again: a launch that made it may have removed it
            handle, created = _open(path)
        except (FileNotFoundError, FileExistsError):  # a file or folder came or went between two looks
            continue
        if not _locked(handle, path, created, run_dir):
            return lock  # this filesystem has no locks
        if _still_at(handle, path):
            handle.truncate()
            handle.write(f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
            handle.flush()
            lock.handle = handle
            return lock
        handle.close()  # locked a file that its holder removed as it let go: the name leads to another now
    lock.release()
    raise HfGptError(f"Could not lock {run_dir}: its lock file {path} kept changing under this launch "
                     f"({_ATTEMPTS} tries). Launch again.")


def _open(path: Path) -> tuple[IO[str], bool]:
    """The file at `path`, opened for reading and writing, created if there was none; and whether it was."""
    try:
        fd, created = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | NO_FOLLOW, 0o644), True
    except FileExistsError:
        fd, created = os.open(path, os.O_RDWR | NO_FOLLOW), False
    return open(fd, "r+", encoding="utf-8"), created


def _locked(handle: IO[str], path: Path, created: bool, run_dir: Path) -> bool:
    """flock `handle` without waiting; False (with a warning, the file closed and removed if this launch made
    it) where the filesystem has no locks; an `HfGptError` naming the holder if another launch holds it."""
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as error:
        if error.errno in (errno.EAGAIN, errno.EACCES):
            holder = handle.read().strip() or "another process"
            handle.close()
            raise HfGptError(
                f"The run directory {run_dir} is in use by another hfgpt launch ({holder}). Two launches on one run "
                "would overwrite each other's checkpoints; wait for that one to end or stop it, or choose another "
                "--run-name. (If that machine crashed, a network filesystem frees its lock within a few minutes.)"
            ) from None
        handle.close()  # e.g. ENOLCK, ENOSYS: this filesystem has no locks, so the file guards nothing
        if created:
            path.unlink(missing_ok=True)
        warnings.warn(f"cannot lock {run_dir} ({error.strerror}): this filesystem does not support locks, so "
                      "nothing stops a second launch on the same run; start only one.", stacklevel=4)
        return False


def _still_at(handle: IO[str], path: Path) -> bool:
    """Whether the name `path` leads to the open file `handle` (the same device and inode)."""
    try:
        named = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    held = os.fstat(handle.fileno())
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)
