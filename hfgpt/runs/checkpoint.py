"""Resumable checkpoints that are never half-written, never silently corrupt, and pruned safely.

accelerate's `save_state` writes in place with no completion marker, and its `total_limit` deletes
old checkpoints before the new one is safe. Here a checkpoint is written under a temporary name, sealed
by its manifest (`hfgpt.runs.manifest`), flushed to disk and renamed to `step_<N>`; then the `latest`
pointer moves (a symlink plus `latest.txt` for filesystems without symlinks), and only then are old
checkpoints pruned. Resuming takes the newest checkpoint whose files all match their manifest, whose
weights fit the model, and whose RNG state really loaded; any other is set aside with a warning that
names it and what is wrong.

Deletion touches only names hfgpt gives here, never through a symlink (`hfgpt.files.remove_made`):
pruning only sealed `step_<N>` folders (renamed to `.step_<N>.deleting` first), clean-up only
`.step_<N>.tmp` and `.step_<N>.deleting`; any other folder in checkpoints/ is left as it is.

    checkpoints/
        step_00000500/   model.safetensors, optimizer.bin, random_states_<rank>.pkl,
                         trainer_state.json, checkpoint.json
        latest -> step_00000500, latest.txt
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list, gather_object
from safetensors import safe_open

from ..collectives import first_failure
from ..errors import HfGptError, error_summary, os_error_text
from ..files import aside_name, fsync, publish, remove_made, replace_text
from .manifest import MANIFEST, manifest_problem, write_manifest
from .state import TrainerState, rng_fingerprint, rng_problem
from .zero_reshard import load_resharded

CHECKPOINTS = "checkpoints"
TRAINER_STATE = "trainer_state.json"
_NAME = re.compile(r"step_(\d{8,})")
# a save, a prune or a load through a universal view (hfgpt.runs.zero_reshard) under way, or cut short
_STAGING = re.compile(r"\.step_\d{8,}\.(tmp|deleting|universal)")


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}"


def checkpoint_step(path: Path) -> int:
    return int(_NAME.fullmatch(path.name).group(1))


def save_checkpoint(accelerator: Accelerator, run_dir: Path, state: TrainerState) -> Path:
    """Save everything needed to resume after `state.step` steps; called on every process.

    Raises OSError on every process if any process failed to write (a full disk, say): the
    temporary folder is removed and every earlier checkpoint is left as it was.
    """
    checkpoints = run_dir / CHECKPOINTS
    final = checkpoints / checkpoint_name(state.step)
    if final.is_dir():  # saved before (the step a run resumed from): the state is the same
        return final
    staging = checkpoints / f".{final.name}.tmp"
    if accelerator.is_main_process:
        remove_made(staging, _STAGING, ignore_errors=True)
        staging.mkdir(parents=True)
    accelerator.wait_for_everyone()
    fingerprints = gather_object([rng_fingerprint()])  # by rank: the states save_state is about to write
    failure = ""
    try:
        accelerator.save_state(str(staging))
    except OSError as error:
        failure = os_error_text(error, staging)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process and not failure:
        try:
            saved = state.replaced(rng_fingerprints=fingerprints)
            (staging / TRAINER_STATE).write_text(json.dumps(saved.to_json(), indent=2))
            write_manifest(staging, state.step)
            publish(staging, final)
            _point_latest(checkpoints, final.name)
        except OSError as error:
            failure = os_error_text(error, staging)
    failure = first_failure(failure)
    if failure:
        if accelerator.is_main_process:
            remove_made(staging, _STAGING, ignore_errors=True)
        raise OSError(f"could not write checkpoint {final.name}: {failure}")
    return final


def intact_checkpoint(last_saved: int) -> str:
    """Which checkpoint a failure leaves to resume from, in words."""
    if not last_saved:
        return "No checkpoint had been saved yet."
    return f"The newest checkpoint, from step {last_saved}, is intact."


def save_failure(error: OSError, run_dir: Path, last_saved: int) -> HfGptError:
    """A failed save (a full disk, permissions) as one paragraph: what is still intact, and what to do."""
    return HfGptError(f"{error}. {intact_checkpoint(last_saved)} Free some space (or fix the folder's permissions) "
                      f"and resume with `hfgpt continue {run_dir}`.")


def _point_latest(checkpoints: Path, name: str) -> None:
    replace_text(checkpoints / "latest.txt", name + "\n")
    link = checkpoints / "latest.tmp"
    link.unlink(missing_ok=True)
    try:
        link.symlink_to(name, target_is_directory=True)
        os.replace(link, checkpoints / "latest")
    except OSError:
        pass  # no symlinks here: latest.txt alone points the way
    fsync(checkpoints)


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """The renamed-into-place checkpoints of a run, oldest first (not yet verified)."""
    folder = run_dir / CHECKPOINTS
    found = [p for p in folder.iterdir() if p.is_dir() and not p.is_symlink() and _NAME.fullmatch(p.name)] \
        if folder.is_dir() else []
    return sorted(found, key=checkpoint_step)


def sealed_checkpoints(run_dir: Path) -> list[Path]:
    """The checkpoints hfgpt finished writing (their manifest is in place), oldest first (not yet verified)."""
    return [p for p in complete_checkpoints(run_dir) if (p / MANIFEST).is_file()]


def checkpoint_problem(folder: Path) -> str:
    """Why `folder` cannot be resumed from, or "" when every file matches its manifest."""
    return manifest_problem(folder, required=(TRAINER_STATE,))


def read_trainer_state(folder: Path) -> TrainerState:
    return TrainerState.from_json(json.loads((folder / TRAINER_STATE).read_text()))


def prune_checkpoints(run_dir: Path, keep_last: int, protected: Iterable[int] = ()) -> list[Path]:
    """Delete all but the newest `keep_last` sealed checkpoints, never one whose step is `protected`."""
    if keep_last <= 0:
        return []
    keep = set(protected)
    doomed = [p for p in sealed_checkpoints(run_dir)[:-keep_last] if checkpoint_step(p) not in keep]
    for folder in doomed:
        # Renamed first, so a crash mid-delete never leaves a half-deleted folder that looks complete.
        trash = folder.with_name(f".{folder.name}.deleting")
        os.replace(folder, trash)
        remove_made(trash, _STAGING, ignore_errors=True)
    return doomed


def clear_leftovers(run_dir: Path) -> list[Path]:
    """Remove what an interrupted save, prune or resharded load left behind (`.step_<N>.tmp`, `.deleting`,
    `.universal`)."""
    folder = run_dir / CHECKPOINTS
    leftovers = sorted(p for p in folder.iterdir() if _STAGING.fullmatch(p.name)) if folder.is_dir() else []
    return [path for path in leftovers if remove_made(path, _STAGING, ignore_errors=True)]


def _shape_problem(folder: Path, model: torch.nn.Module) -> str:
    """A difference between the saved weights' shapes and the model's, named; "" when they agree."""
    weights = folder / "model.safetensors"
    if not weights.is_file():
        return ""  # DeepSpeed keeps its own sharded format, checked by DeepSpeed itself
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    with safe_open(weights, "pt") as saved:
        for name in saved.keys():  # noqa: SIM118 (safe_open is not a dict)
            shape = tuple(saved.get_slice(name).get_shape())
            if name in expected and expected[name] != shape:
                return (f"its {name} has shape {shape} but this run's model has {expected[name]} (the checkpoint "
                        "comes from a model of another shape or vocabulary)")
            if name not in expected:
                return f"it holds {name}, which this run's model does not have (another architecture)"
    return ""


def _load(accelerator: Accelerator, folder: Path, model: torch.nn.Module,
          reshard: bool) -> tuple[TrainerState | None, str]:
    """Load `folder` into the prepared objects on every process: its state, or why it cannot be trusted. `reshard`:
    a ZeRO checkpoint of another number of processes, loaded through DeepSpeed's universal form."""
    problem = [""]
    if accelerator.is_main_process:
        problem = [checkpoint_problem(folder) or _shape_problem(folder, accelerator.unwrap_model(model))]
    broadcast_object_list(problem)
    if problem[0]:
        return None, problem[0]
    state, failure = None, ""
    try:
        if reshard:
            load_resharded(accelerator, folder, model)
        else:
            accelerator.load_state(str(folder))
        state = read_trainer_state(folder)
        failure = rng_problem(state, accelerator.process_index)
    except Exception as error:  # any failure to load means: do not trust this checkpoint
        failure = f"it failed to load ({error_summary(error, limit=300)})"
    failure = first_failure(failure)
    return (None if failure else state), failure


def load_newest_checkpoint(accelerator: Accelerator, run_dir: Path, model: torch.nn.Module,
                           warn: Callable[[str], None], reshard: bool = False) -> tuple[Path, TrainerState]:
    """Restore the newest usable checkpoint of `run_dir` into the prepared objects; every process calls it.

    A checkpoint that fails its manifest, does not fit the model, or fails to load (a planted pickle is
    refused by `weights_only` loading; an RNG file that accelerate skipped shows as random states other than
    those saved) is moved aside as `step_<N>.unusable` with a warning, and the one before is tried.
    """
    reasons: list[str] = []
    for folder in reversed(complete_checkpoints(run_dir)):
        state, problem = _load(accelerator, folder, model, reshard)
        if state is not None:
            return folder, state
        reasons.append(f"{folder.name}: {problem}")
        aside = aside_name(folder, "unusable")  # a resumed run may write and break step N again
        warn(f"skipping checkpoint {folder}: {problem}; it is set aside as {aside.name} and the one "
             "before is tried.")
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            os.replace(folder, aside)
    set_aside = sorted(p.name for p in (run_dir / CHECKPOINTS).glob("step_*.unusable*")) if not reasons else []
    listed = "; ".join(reasons) or (f"earlier launches set aside every one as unusable: {', '.join(set_aside)}"
                                    if set_aside else "there are none")
    raise HfGptError(f"{run_dir} has no checkpoint to continue from ({listed}). Start again with `hfgpt train "
                     f"--run-name {run_dir.name} --overwrite`, or `hfgpt fork` from its final/ or best/ model.")
