"""Resumable checkpoints: `accelerator.save_state` plus the loop's own state, made visible atomically.

accelerate writes a checkpoint in place with no completion marker, so a crash mid-save leaves a
folder that looks like a checkpoint. Here every checkpoint is written under a temporary name,
flushed to disk, and only then renamed to `step_<N>` and pointed at by `latest` (a symlink, plus
a `latest.txt` file for filesystems without symlinks).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from accelerate import Accelerator

TRAINER_STATE = "trainer_state.json"


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}"


def _fsync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def _point_latest(checkpoints: Path, name: str) -> None:
    pointer_text = checkpoints / "latest.txt.tmp"
    pointer_text.write_text(name + "\n")
    os.replace(pointer_text, checkpoints / "latest.txt")
    link = checkpoints / "latest.tmp"
    link.unlink(missing_ok=True)
    try:
        link.symlink_to(name, target_is_directory=True)
        os.replace(link, checkpoints / "latest")
    except OSError:
        pass  # no symlinks here: latest.txt alone points the way


def save_checkpoint(accelerator: Accelerator, run_dir: Path, step: int, trainer_state: dict[str, Any]) -> Path:
    """Save everything needed to resume after `step` steps; called on every process."""
    checkpoints = run_dir / "checkpoints"
    final = checkpoints / checkpoint_name(step)
    staging = checkpoints / f".{checkpoint_name(step)}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(staging))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (staging / TRAINER_STATE).write_text(json.dumps({"step": step, **trainer_state}, indent=2))
        _fsync_tree(staging)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
        _point_latest(checkpoints, final.name)
    accelerator.wait_for_everyone()
    return final
