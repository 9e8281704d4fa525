"""The run directory: where one run keeps its config, log, tokenizer, checkpoints and model.

    <rundir>/<run_name>/
        run.json           status, parent, package versions, one entry per launch (hfgpt.runinfo)
        config.toml        resolved config, loadable with --config
        train_log.jsonl    one JSON object per logged train or validation step
        tokenizer/         the run's tokenizer (save_pretrained)
        architecture/      the model's config.json, so `continue` rebuilds the same model
        checkpoints/       step_00000500/ ... verified resumable checkpoints (hfgpt.checkpoint), `latest`
        logs/              tracker output (TensorBoard event files, ...)
        best/              save_pretrained model + tokenizer of the best validation loss so far
        final/             save_pretrained model + tokenizer, loadable by AutoModelForCausalLM
"""

from __future__ import annotations

import contextlib
import errno
import getpass
import os
import shutil
import socket
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from accelerate import PartialState
from accelerate.utils import broadcast_object_list

from .config import CheckpointSection
from .errors import HfGptError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

ARCHITECTURE = "architecture"  # the run's model config.json, so `continue` rebuilds the same model
TOKENIZER = "tokenizer"


def default_run_name() -> str:
    """date-time-user, so runs sort by start time and tell who started them."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "user"
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{user}"


@contextlib.contextmanager
def claim_run_dir(checkpoint: CheckpointSection, existing: Path | None, state: PartialState) -> Iterator[Path]:
    """The run directory, held by this launch until the block ends: `existing` (continue) or a fresh one
    (train, fork), created on the main process; every process gets the same path.

    The hold is an OS lock on `.<run-name>.lock` beside the run directory, so a second launch on the same
    run is refused instead of interleaving its checkpoints with the first's, or deleting it with
    --overwrite. The OS drops the lock when the process ends, however it ends (SIGKILL included).
    """
    chosen: list[Any] = [None]
    lock = None
    if state.is_main_process:
        run_dir = existing or Path(checkpoint.rundir) / (checkpoint.run_name or default_run_name())
        try:
            lock = _lock(run_dir)
            if existing is None:
                _make_fresh(run_dir, checkpoint.overwrite)
            chosen = [str(run_dir)]
        except HfGptError as error:
            chosen = [error]
    broadcast_object_list(chosen)
    try:
        if isinstance(chosen[0], Exception):
            raise chosen[0]
        yield Path(chosen[0])
    finally:
        if lock is not None:
            lock.close()


def _lock(run_dir: Path) -> IO[str] | None:
    if fcntl is None:
        return None  # no flock here (Windows): launches are not guarded against each other
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    handle = open(run_dir.parent / f".{run_dir.name}.lock", "a+", encoding="utf-8")  # noqa: SIM115 (held open)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno not in (errno.EAGAIN, errno.EACCES):  # e.g. ENOLCK, ENOSYS: this filesystem has no locks
            handle.close()
            warnings.warn(f"cannot lock {run_dir} ({error.strerror}): this filesystem does not support locks, so "
                          "nothing stops a second launch on the same run; start only one.", stacklevel=2)
            return None
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise HfGptError(
            f"The run directory {run_dir} is in use by another hfgpt launch ({holder}). Two launches on one run "
            "would overwrite each other's checkpoints; wait for that one to end or stop it, or choose another "
            "--run-name. (If that machine crashed, a network filesystem frees its lock within a few minutes.)"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    handle.flush()
    return handle


def _make_fresh(run_dir: Path, overwrite: bool) -> None:
    if run_dir.exists() and any(run_dir.iterdir()) and not overwrite:
        raise HfGptError(
            f"The run directory {run_dir} already exists and is not empty, and a new run would "
            "overwrite it. Choose another name with --run-name or another parent with --rundir, resume it "
            f"with `hfgpt continue {run_dir}`, or replace it with --overwrite.")
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
