"""Tracker names are checked against accelerate's, and installed, before a run does any work."""

from __future__ import annotations

import pytest

import hfgpt.training.trackers
from hfgpt.errors import HfGptError
from hfgpt.training.trackers import check_trackers


def test_none_and_duplicates():
    assert check_trackers(["none"]) == [] and check_trackers([]) == []
    assert check_trackers(["tensorboard", "tensorboard"]) == ["tensorboard"]


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(HfGptError, match=r"--trackers foo: 'foo' is not a tracker that accelerate knows\. "
                                         r"Choose among .*tensorboard.*wandb.*, or none\."):
        check_trackers(["foo"])


def test_a_tracker_that_is_not_installed_names_what_to_install(monkeypatch):
    monkeypatch.setattr(hfgpt.training.trackers, "get_available_trackers", lambda: ["tensorboard"])
    with pytest.raises(HfGptError, match=r'asks for wandb, which is not installed here \(wandb: pip install '
                                         r'"hfgpt\[tracking\]"\)'):
        check_trackers(["tensorboard", "wandb"])


def test_train_refuses_an_unknown_tracker_before_it_reads_any_data(tmp_path, capsys):
    from hfgpt.cli import main

    missing = tmp_path / "no-such-text.txt"  # reading the data first would fail on this instead
    assert main(["train", "--trackers", "foo", "--train", str(missing), "--rundir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hfgpt: error: --trackers foo: 'foo' is not a tracker") and "Traceback" not in err
