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

import getpass
import os
import shutil
import time
from pathlib import Path

from accelerate import PartialState
from accelerate.utils import broadcast_object_list

from .config import CheckpointSection
from .errors import HfGptError


def default_run_name() -> str:
    """date-time-user, so runs sort by start time and tell who started them."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "user"
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{user}"


def replace_text(path: Path, text: str) -> None:
    """Write `path` through a hidden temporary file and a rename: a crash leaves the old text or the new,
    never half of one."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def aside_name(path: Path, label: str) -> Path:
    """Where to set a broken file or folder aside, never over an earlier one: `NAME.label`, then
    `NAME.label.2`, ..."""
    aside, copy = path.with_name(f"{path.name}.{label}"), 1
    while aside.exists():
        copy += 1
        aside = path.with_name(f"{path.name}.{label}.{copy}")
    return aside


def create_run_dir(checkpoint: CheckpointSection, state: PartialState) -> Path:
    """Create a fresh run directory on the main process; every process gets the same path."""
    chosen = [None]
    if state.is_main_process:
        run_dir = Path(checkpoint.rundir) / (checkpoint.run_name or default_run_name())
        if run_dir.exists() and any(run_dir.iterdir()) and not checkpoint.overwrite:
            chosen = [HfGptError(
                f"The run directory {run_dir} already exists and is not empty, and a new run would "
                "overwrite it. Choose another name with --run-name or another parent with --rundir, resume it "
                f"with `hfgpt continue {run_dir}`, or replace it with --overwrite."
            )]
        else:
            if run_dir.exists() and checkpoint.overwrite:
                shutil.rmtree(run_dir)
            run_dir.mkdir(parents=True, exist_ok=True)
            chosen = [str(run_dir)]
    broadcast_object_list(chosen)
    if isinstance(chosen[0], Exception):
        raise chosen[0]
    return Path(chosen[0])
