"""Stop rules: the signal flag and the shared non-finite/stop flags."""

from __future__ import annotations

import math
import os
import signal

import pytest
import torch
from accelerate import Accelerator

from hfgpt.collectives import agree_step_flags
from hfgpt.errors import HfGptError
from hfgpt.training.stopping import StopSignals, check_best_metric


def test_a_signal_only_sets_a_flag_and_a_second_sigint_stops_at_once():
    with StopSignals() as signals:
        os.kill(os.getpid(), signal.SIGTERM)
        assert signals.received == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, "the previous handler is back"


def test_the_step_flags_see_non_finite_losses_and_gradients_and_carry_the_signal():
    accelerator = Accelerator(cpu=True)
    fine = torch.tensor(2.5)

    def flags(*args, signalled=0):
        return agree_step_flags(accelerator, *args, signalled=signalled).tolist()

    assert flags(fine, torch.tensor(1.0)) == [0.0, 0.0]
    assert flags(torch.tensor(math.nan), torch.tensor(1.0)) == [1.0, 0.0]
    assert flags(fine, torch.tensor(math.inf), signalled=signal.SIGTERM) == [1.0, float(signal.SIGTERM)]
    assert flags(fine, None, signalled=signal.SIGINT) == [0.0, float(signal.SIGINT)]


def test_best_metric_names_a_line_the_run_has():
    lines = ["valid", "valid/books", "task/facts"]
    for metric in lines:
        check_best_metric(metric, lines)
    with pytest.raises(HfGptError, match=r"'valid/web' is not a line of this run; it has valid, valid/books, "
                                         r"task/facts\. .*--eval-tasks a task/NAME line"):
        check_best_metric("valid/web", lines)
