"""Stop rules: the signal flag and the shared non-finite/stop decision."""

from __future__ import annotations

import math
import os
import signal

import pytest
import torch
from accelerate import Accelerator

from hfgpt.collectives import step_flags
from hfgpt.training.stopping import StopSignals


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
