"""The run directory: where one run keeps its config, log, tokenizer, checkpoints and model.

    <rundir>/<run_name>/
        run.json           status, parent, package versions, one entry per launch (hfgpt.runinfo); one that
                           cannot be read is set aside as run.json.unreadable, .unreadable.2, ...
        config.toml        resolved config, loadable with --config
        train_log.jsonl    one JSON object per logged train or validation step
        samples.jsonl      with --log-samples: the training blocks each process read at each step
        tokenizer/         the run's tokenizer (save_pretrained)
        architecture/      the model's config.json, so `continue` rebuilds the same model
        checkpoints/       step_00000500/ ... verified resumable checkpoints (hfgpt.checkpoint), `latest`
        logs/              tracker output (TensorBoard event files, ...)
        loss.png           the run's loss, learning rate and throughput curves, drawn at its end
        best/              save_pretrained model + tokenizer of the best validation loss so far
        final/             save_pretrained model + tokenizer, loadable by AutoModelForCausalLM
        .run.json.tmp, .config.toml.tmp, .train_log.jsonl.tmp, .samples.jsonl.tmp, .best.tmp, .best.old,
        .final.tmp, .final.old   the staging names of files and folders being replaced whole
    <rundir>/.<run_name>.lock                 held by the launch that trains the run, removed as it ends
                                              (hfgpt.runs.lock)
    <rundir>/.<run_name>.replaced-<time>/     the run that --overwrite replaces, until the new one's first checkpoint

A run name is a name inside --rundir, never a path (`hfgpt.config.run_names`), and a new run's
directory must be a real folder strictly inside --rundir once symlinks are resolved. `--overwrite` replaces
only an hfgpt run (its run.json, or its tokenizer/ beside a config.toml or architecture/, say so) that holds
nothing but the names above. The old run is renamed aside and deleted only once the new run has a sealed
checkpoint: a launch that ends before that removes its own unfinished run and puts the old one back, and
one killed before that is repaired by the next launch that claims the name.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import re
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from accelerate import PartialState
from accelerate.utils import broadcast_object_list

from ..config import RunSection
from ..config.run_names import RUN_NAME_PART, check_run_name
from ..errors import HfGptError, os_error_text
from ..files import aside_name, remove_made
from .checkpoint import CHECKPOINTS, sealed_checkpoints
from .lock import RunLock, take_run_lock
from .logbook import SAMPLES_LOG, TRAIN_LOG
from .model_folders import EXPORTS
from .runinfo import RUN_INFO

ARCHITECTURE = "architecture"  # the run's model config.json, so `continue` rebuilds the same model
TOKENIZER = "tokenizer"
CONFIG = "config.toml"
LOGS = "logs"
LOSS_PLOT = "loss.png"  # the run's curves, drawn at its end (hfgpt.sharing.plots)
_WRITTEN = frozenset({RUN_INFO, CONFIG, TRAIN_LOG, SAMPLES_LOG, TOKENIZER, ARCHITECTURE, CHECKPOINTS, LOGS, LOSS_PLOT,
                      *EXPORTS})
_STAGED = re.compile("|".join([
    rf"\.({'|'.join(map(re.escape, (RUN_INFO, CONFIG, TRAIN_LOG, SAMPLES_LOG, LOSS_PLOT)))})\.tmp",  # replaced whole
    rf"\.({'|'.join(EXPORTS)})\.(tmp|old)",  # export.export_model's swap
    rf"{re.escape(RUN_INFO)}\.unreadable(\.\d+)?",  # runinfo.read_run_info's set-aside
]))
_LISTED = 5  # unknown entries a refusal names


def default_run_name() -> str:
    """date-time-user, so runs sort by start time and tell who started them (a valid run name whatever the
    user name holds)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "user"
    user = re.sub(r"[^A-Za-z0-9._+=@-]+", "-", user)[:100].strip(".-") or "user"
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{user}"


def unknown_entries(run_dir: Path) -> list[str]:
    """The entries of `run_dir` that hfgpt never writes in a run, sorted."""
    return sorted(p.name for p in run_dir.iterdir() if p.name not in _WRITTEN and not _STAGED.fullmatch(p.name))


@contextlib.contextmanager
def claim_run_dir(place: RunSection, existing: Path | None, state: PartialState) -> Iterator[Path]:
    """The run directory, held by this launch until the block ends: `existing` (continue) or a fresh one
    (train, fork), made on the main process; every process gets the same path. Claimed before any data
    are prepared, so a launch that cannot have it is refused at once.

    The hold is an OS lock on `.<run-name>.lock` beside the run directory (`hfgpt.runs.lock`), so a second
    launch on the same run is refused instead of interleaving its checkpoints with the first's, or deleting it
    with --overwrite. When the block ends, a replaced run is deleted if the new one has a checkpoint and put
    back if not, and the lock file is removed: a launch that made nothing leaves nothing.
    """
    chosen: list[Any] = [None]
    lock: RunLock | None = None
    made, failed = False, True
    if state.is_main_process:
        try:
            run_dir = existing or _new_run_dir(place)
            lock = take_run_lock(run_dir)
            if existing is None:
                settle_replacement(run_dir)  # what a launch killed while replacing this run left
                made = _make_fresh(run_dir, place.overwrite)
            else:
                drop_replaced_run(run_dir)
            chosen = [str(run_dir)]
        except HfGptError as error:
            chosen = [error]
        except OSError as error:
            chosen = [HfGptError(f"Cannot make the run directory ({os_error_text(error, place.rundir)}). "
                                 "Choose a --rundir where folders can be made.")]
    broadcast_object_list(chosen)
    try:
        if isinstance(chosen[0], Exception):
            raise chosen[0]
        yield Path(chosen[0])
        failed = False
    finally:
        if state.is_main_process and existing is None and not isinstance(chosen[0], Exception):
            _release(Path(chosen[0]), made, failed)
        if lock is not None:
            lock.release()


def _new_run_dir(place: RunSection) -> Path:
    """<rundir>/<run-name>, refused unless it is (or will be) a real folder strictly inside --rundir."""
    name = place.run_name or default_run_name()
    check_run_name(name)
    run_dir = Path(place.rundir) / name
    if run_dir.is_symlink():
        raise HfGptError(
            f"The run directory {run_dir} is a symlink. hfgpt writes a run, and --overwrite deletes one, only in a "
            "real folder inside --rundir, never where a link points: choose another --run-name.")
    try:
        inside, resolved = Path(place.rundir).resolve(), run_dir.resolve()
    except (OSError, RuntimeError) as error:  # a symlink loop on the way
        raise HfGptError(f"--rundir {place.rundir} with --run-name {name} cannot be resolved ({error}); "
                         "choose another --rundir or --run-name.") from None
    if inside not in resolved.parents:
        raise HfGptError(
            f"--run-name {name} leads to {resolved}, outside --rundir {place.rundir} ({inside}), through a "
            "symlink on the way. A run directory must lie inside --rundir: choose another --run-name or --rundir.")
    return run_dir


def _make_fresh(run_dir: Path, overwrite: bool) -> bool:
    """Make the run directory, setting an old run aside with --overwrite; says whether it made a folder."""
    if run_dir.exists() and not run_dir.is_dir():
        raise HfGptError(f"{run_dir} is a file, not a run directory; move it, or choose another --run-name.")
    if run_dir.is_dir() and any(run_dir.iterdir()):
        if not overwrite:
            raise HfGptError(
                f"The run directory {run_dir} already exists and is not empty, and a new run would "
                "overwrite it. Choose another name with --run-name or another parent with --rundir, resume it "
                f"with `hfgpt continue {run_dir}`, or replace it with --overwrite.")
        _set_aside(run_dir)
    made = not run_dir.is_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    return made


def _set_aside(run_dir: Path) -> None:
    """Rename the run that --overwrite replaces to `.<name>.replaced-<time>` beside it, if it is an hfgpt run
    holding only what hfgpt writes."""
    problem = _not_replaceable(run_dir)
    if problem:
        raise HfGptError(problem)
    aside = aside_name(run_dir.with_name(f".{run_dir.name}"), f"replaced-{time.strftime('%Y%m%d-%H%M%S')}")
    os.rename(run_dir, aside)
    print(f"replacing the run {run_dir} (kept as {aside} until the new run's first checkpoint)")


def _not_replaceable(run_dir: Path) -> str:
    """Why --overwrite must not delete `run_dir`, or "" when it may."""
    if not ((run_dir / RUN_INFO).is_file() or ((run_dir / TOKENIZER).is_dir() and
            ((run_dir / CONFIG).is_file() or (run_dir / ARCHITECTURE).is_dir()))):
        return (f"--overwrite replaces only an hfgpt run, and {run_dir} is not one (it has no {RUN_INFO}, nor a "
                f"{TOKENIZER}/ beside a {CONFIG} or an {ARCHITECTURE}/). hfgpt deletes only what it made: move that "
                "folder away yourself, or choose another --run-name.")
    unknown = unknown_entries(run_dir)
    if unknown:
        more = f" and {len(unknown) - _LISTED} more" if len(unknown) > _LISTED else ""
        return (f"--overwrite would delete the run {run_dir}, but it holds what hfgpt did not write there "
                f"({', '.join(unknown[:_LISTED])}{more}). hfgpt deletes only what it made: move those out of the "
                "run, or choose another --run-name.")
    return ""


def _replaced_name(run_dir: Path) -> re.Pattern[str]:
    return re.compile(rf"\.{re.escape(run_dir.name)}\.replaced-\d{{8}}-\d{{6}}(\.\d+)?")


def _replaced_copies(run_dir: Path) -> list[Path]:
    """The old runs that --overwrite set aside for `run_dir`, oldest first."""
    name = _replaced_name(run_dir)
    return sorted(p for p in run_dir.parent.iterdir()
                  if name.fullmatch(p.name) and p.is_dir() and not p.is_symlink()) if run_dir.parent.is_dir() else []


def drop_replaced_run(run_dir: Path) -> None:
    """Delete the old run that --overwrite set aside for `run_dir`, once the new run has a sealed checkpoint
    (the loop calls this after every checkpoint: until then the old run is all there is to go back to)."""
    copies = _replaced_copies(run_dir)
    if copies and sealed_checkpoints(run_dir):
        for copy in copies:
            remove_made(copy, _replaced_name(run_dir))


def settle_replacement(run_dir: Path) -> None:
    """Finish a replacement of `run_dir` either way: drop the old run if the new one has a checkpoint, else
    remove the new one's unfinished folder and put the old run back."""
    drop_replaced_run(run_dir)
    copies = _replaced_copies(run_dir)
    if not copies:
        return
    unknown = unknown_entries(run_dir) if run_dir.is_dir() else []  # never a symlink: _new_run_dir refuses one
    if unknown:
        warnings.warn(f"{run_dir} has no checkpoint, but it holds what hfgpt did not write ({', '.join(unknown)}), "
                      f"so it is left as it is and the run it was to replace stays in {copies[-1]}.", stacklevel=2)
        return
    remove_made(run_dir, RUN_NAME_PART)
    os.rename(copies[-1], run_dir)
    print(f"no checkpoint was written, so the earlier run in {run_dir} is back as it was (the new run's unfinished "
          "files are removed)")


def _release(run_dir: Path, made: bool, failed: bool) -> None:
    """At the end of a launch that made `run_dir`: settle a replacement; a failed launch leaves no empty folder."""
    settle_replacement(run_dir)
    if failed and made and run_dir.is_dir() and not any(run_dir.iterdir()):
        run_dir.rmdir()
