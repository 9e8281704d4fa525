"""What `continue` restores from the newest usable checkpoint, and what it refuses to resume.

The checkpoint holds the model, optimizer and every process's RNG (through accelerate, checked against the
fingerprints saved with them), and a `TrainerState` with the step, schedule, metric window, the stop rules'
memory and the run's identity, which must match this launch's (`hfgpt.runs.state.check_same_run`). The
training layer then applies what belongs to it (the metric window, the peak learning rate).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator

from ..errors import HfGptError
from .checkpoint import load_newest_checkpoint
from .model_folders import exported_step
from .runinfo import never_ended
from .state import TrainerState, check_same_run


def resume(accelerator: Accelerator, run_dir: Path, model: torch.nn.Module,
           scheduler: torch.optim.lr_scheduler.LambdaLR, identity: dict[str, Any], max_steps: int,
           reshard: bool = False) -> TrainerState:
    """Load the newest usable checkpoint into the prepared model, optimizer and schedule; returns its state.
    `reshard`: it is a ZeRO checkpoint of another number of processes (hfgpt.runs.zero_reshard)."""
    folder, state = load_newest_checkpoint(accelerator, run_dir, model, warn=_warn_on_main(accelerator),
                                           reshard=reshard)
    check_same_run(run_dir, derived=(state.identity, identity))
    scheduler.load_state_dict({**state.scheduler, "lr_lambdas": [None] * len(scheduler.lr_lambdas)})
    accelerator.print(f"continuing from {folder} (step {state.step})")
    check_steps_left(run_dir, state.step, max_steps)
    return state


def check_steps_left(run_dir: Path, start_step: int, max_steps: int) -> None:
    """`continue` needs steps left to train, or a run that saved its last step but was killed before it ended:
    before or after writing `final/`, before run.json said completed (it then only finishes)."""
    finished = exported_step(run_dir / "final") >= start_step and not never_ended(run_dir)
    if start_step > max_steps or (start_step == max_steps and finished):
        raise HfGptError(f"{run_dir} already trained for {start_step} steps (--max-steps {max_steps}); "
                         "give a larger --max-steps to train on.")


def _warn_on_main(accelerator: Accelerator) -> Callable[[str], None]:
    """A warning function that only the main process voices."""
    def warn(message: str) -> None:
        if accelerator.is_main_process:
            warnings.warn(message, stacklevel=2)
    return warn
