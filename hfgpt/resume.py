"""What `continue` restores from the newest usable checkpoint, and what it refuses to resume.

The checkpoint holds the model, optimizer, every process's RNG (through accelerate, and checked against the
fingerprints saved with it), and in `trainer_state.json` the step, schedule, metric window and early-stopping
state. What would change the
run's math (world size, global batch, sequence length, tokenizer, data) is stored with it and compared.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator

from .checkpoint import load_newest_checkpoint
from .config import TrainConfig, TrainingSection
from .errors import HfGptError
from .export import exported_step
from .metrics import TokenMetrics
from .optim import lr_factor
from .stopping import Progress

_FIXES = {
    "world_size": "launch it on as many processes as it was saved with (accelerate launch --num_processes), "
                  "or fork it",
    "global_batch": "the batch settings changed; use the run's own, or fork it",
    "seq_len": "the sequence length changed; use the run's own, or fork it",
    "tokenizer": "the run's tokenizer/ folder is not the one this checkpoint was trained with; restore it",
    "data": "the training data are not the same files or contents; point --train/--datadir at the run's "
            "data, or fork the run to train on new data",
}


def resume(accelerator: Accelerator, run_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
           scheduler: torch.optim.lr_scheduler.LambdaLR, metrics: TokenMetrics, identity: dict[str, Any],
           cfg: TrainConfig) -> tuple[int, Progress]:
    """Load the newest usable checkpoint into the prepared model and optimizer, the schedule and the metric
    window; returns the step to go on from and the early-stopping and bad-step state."""
    peaks = list(scheduler.base_lrs)  # this launch's peak rates, before the checkpoint's replace them
    folder, saved = load_newest_checkpoint(accelerator, run_dir, model, warn=_warn_on_main(accelerator))
    check_resumable(saved, identity, run_dir)
    scheduler.load_state_dict({**saved["scheduler"], "lr_lambdas": [None] * len(optimizer.param_groups)})
    apply_peak_lr(optimizer, scheduler, peaks, cfg.training)
    metrics.restore(saved.get("metric_sums", [0.0, 0.0, 0.0]), accelerator)
    step = saved["step"]
    accelerator.print(f"continuing from {folder} (step {step})")
    check_steps_left(run_dir, step, cfg.training.max_steps)
    return step, Progress.from_dict(saved.get("progress", {}))


def check_resumable(saved: dict[str, Any], now: dict[str, Any], run_dir: Path) -> None:
    """Refuse to continue where the checkpoint's math differs from this launch's, naming what differs."""
    for key, fix in _FIXES.items():
        if key in saved and saved[key] != now[key]:
            raise HfGptError(f"Cannot continue {run_dir}: its checkpoint has {key} {saved[key]!r} but this launch "
                             f"has {now[key]!r}; {fix}.")


def check_steps_left(run_dir: Path, start_step: int, max_steps: int) -> None:
    """`continue` needs steps left to train, or a run that saved its last step but was stopped before
    writing `final/` (it then only finishes)."""
    if start_step > max_steps or (start_step == max_steps and exported_step(run_dir / "final") >= start_step):
        raise HfGptError(f"{run_dir} already trained for {start_step} steps (--max-steps {max_steps}); "
                         "give a larger --max-steps to train on.")


def apply_peak_lr(optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LambdaLR,
                  peaks: list[float], training: TrainingSection) -> None:
    """After a restore, keep this launch's peak rates if `continue` changed them (the checkpoint has the old)."""
    if list(scheduler.base_lrs) == peaks:
        return
    scheduler.base_lrs = list(peaks)
    factor = lr_factor(scheduler.last_epoch, training)
    for group, peak in zip(optimizer.param_groups, peaks, strict=True):
        group["initial_lr"], group["lr"] = peak, peak * factor
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]


def _warn_on_main(accelerator: Accelerator) -> Callable[[str], None]:
    """A warning function that only the main process voices."""
    def warn(message: str) -> None:
        if accelerator.is_main_process:
            warnings.warn(message, stacklevel=2)
    return warn
