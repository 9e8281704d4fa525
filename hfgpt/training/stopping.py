"""What to do when, after each optimizer step: log, evaluate, checkpoint, and the rules that stop a run
before `max_steps` (a signal, `--stop-at-step`, early stopping, too many non-finite steps).

Every stop decision is taken by all processes together, from numbers they share after a collective (the
per-step flags, the reduced validation loss), so no rank stops (or writes) alone and none waits forever.
The rules read the run's `Progress` (hfgpt.runs.state), which checkpoints carry over a `continue`.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import Any

from ..config import TrainingSection
from ..errors import HfGptError
from ..runs.runinfo import INTERRUPTED, STOPPED_EARLY
from ..runs.state import Progress


class StopSignals:
    """SIGTERM and SIGINT (preemption, Ctrl-C) ask the loop to stop after the current step.

    The handler only sets a flag; the loop checks it once per step. A second SIGINT stops at once.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.received = 0  # the signal number, 0 for none
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signum

    def __enter__(self) -> StopSignals:
        for signum in self.SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


@dataclass(frozen=True)
class Stop:
    """Why a run stops before its last step: a run.json status and a sentence."""

    status: str
    reason: str


def due(every: int, done: int, max_steps: int) -> bool:
    """Whether something done every `every` steps (0: only at the end) is due after step `done`."""
    return bool(every and done % every == 0) or done == max_steps


def early_stop(training: TrainingSection, progress: Progress) -> Stop | None:
    """`--early-stopping`: `patience` evaluations in a row without an improvement of at least the min delta."""
    if not (training.early_stopping and progress.evals_without_improvement >= training.patience):
        return None
    return Stop(STOPPED_EARLY, f"early stopping: no improvement of the validation loss for {training.patience} "
                               f"evaluations; best {progress.best_loss:.4f} at step {progress.best_step}")


def launch_stop(training: TrainingSection, done: int, signal_name: str) -> Stop | None:
    """A signal any process received, or `--stop-at-step`: the run is interrupted, to be continued."""
    if signal_name:
        return Stop(INTERRUPTED, f"{signal_name} received")
    if training.stop_at_step and done == training.stop_at_step and done < training.max_steps:
        return Stop(INTERRUPTED, f"--stop-at-step {training.stop_at_step}")
    return None


def check_bad_steps(progress: Progress, limit: int, done: int, newest_checkpoint: str) -> None:
    """Too many non-finite steps in a row (each skipped) end the run with a diagnostic."""
    if progress.bad_steps_in_a_row < limit:
        return
    raise HfGptError(
        f"{limit} steps in a row (up to step {done}) had a non-finite loss or gradient, so training "
        f"stopped (--max-bad-steps {limit}); the model was not updated by them. {newest_checkpoint} "
        "Usual causes: a learning rate too high for this model (lower --lr or raise --warmup-steps), fp16 "
        "overflow (use --precision bf16), or no gradient clipping (--max-grad-norm 1). Then resume with "
        "`hfgpt continue`.")


def check_best_metric(best_metric: str, lines: list[str]) -> None:
    """--best-metric names a validation line of the run (valid, valid/NAME) or one of its tasks (task/NAME)."""
    if best_metric not in lines:
        raise HfGptError(f"--best-metric {best_metric!r} is not a line of this run; it has {', '.join(lines)}. Each "
                         "--valid set (or each weighted source's held-out part) is a valid/NAME line, each of "
                         "--eval-tasks a task/NAME line.")
