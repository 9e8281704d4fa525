"""The trainer state a checkpoint carries: the stop rules' memory, its JSON form (as earlier versions wrote it),
and the one "same run?" check over settings and what a launch derives from them."""

from __future__ import annotations

import math

import pytest

from hfgpt.config import build_config, config_values
from hfgpt.errors import HfGptError
from hfgpt.runs.state import Progress, TrainerState, check_same_run


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


def test_the_trainer_state_reads_back_what_it_writes_and_what_older_versions_wrote():
    state = TrainerState(identity={"world_size": 2, "data": "ab"}, step=8, epoch=1.5, tokens=4096,
                         scheduler={"last_epoch": 8}, metric_sums=[1.0, 2.0, 3.0], rng_fingerprints=["f0", "f1"])
    state.progress.observe_eval(2.0, step=8, min_delta=0.0)
    assert TrainerState.from_json(state.to_json()) == state
    older = {"step": 4, "scheduler": {"last_epoch": 4}, "world_size": 1, "note": "unknown keys are ignored"}
    assert TrainerState.from_json(older) == TrainerState(identity={"world_size": 1}, step=4,
                                                         scheduler={"last_epoch": 4})


def test_a_setting_that_changes_the_math_is_refused_naming_its_flag_and_the_fork(tmp_path):
    saved = config_values(build_config([]))
    check_same_run(tmp_path, settings=(saved, config_values(build_config(["--max-steps", "9000", "--lr", "1e-4"]))))
    with pytest.raises(HfGptError, match=r"cannot change --hidden-size \(128 -> 64\), --seed \(1337 -> 2\).*"
                                         r"hfgpt fork .* --hidden-size 64 --seed 2"):
        check_same_run(tmp_path, settings=(saved, config_values(build_config(["--hidden-size", "64", "--seed", "2"]))))
