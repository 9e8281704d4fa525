"""Stop rules: the signal flag, the shared non-finite/stop decision, and the early-stopping bookkeeping."""

from __future__ import annotations

import math
import os
import signal

import pytest
import torch
from accelerate import Accelerator

from hfgpt.stopping import Progress, StopSignals, step_flags


def test_a_signal_only_sets_a_flag_and_a_second_sigint_stops_at_once():
    with StopSignals() as signals:
        os.kill(os.getpid(), signal.SIGTERM)
        assert signals.received == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, "the previous handler is back"


def test_step_flags_see_non_finite_losses_and_gradients():
    accelerator = Accelerator(cpu=True)
    fine = torch.tensor(2.5)
    assert step_flags(accelerator, fine, torch.tensor(1.0), signalled=0) == (False, "")
    assert step_flags(accelerator, torch.tensor(math.nan), torch.tensor(1.0), signalled=0) == (True, "")
    assert step_flags(accelerator, fine, torch.tensor(math.inf), signalled=signal.SIGTERM) == (True, "SIGTERM")
    assert step_flags(accelerator, fine, None, signalled=signal.SIGINT) == (False, "SIGINT")


def test_progress_tracks_the_best_loss_and_evaluations_without_improvement():
    progress = Progress()
    assert progress.observe_eval(3.0, step=10, min_delta=0.1)
    assert not progress.observe_eval(2.95, step=20, min_delta=0.1)  # better, but by less than min_delta
    assert progress.observe_eval(2.5, step=30, min_delta=0.1)
    assert not progress.observe_eval(2.6, step=40, min_delta=0.1)
    assert (progress.best_loss, progress.best_step, progress.evals_without_improvement) == (2.5, 30, 1)
    for nonfinite in (True, True, False, True):
        progress.observe_step(nonfinite)
    assert (progress.bad_steps_in_a_row, progress.skipped_steps) == (1, 3)
    assert Progress.from_dict(progress.to_dict()) == progress
    assert Progress.from_dict(Progress().to_dict()).best_loss == math.inf
