"""`hfgpt generate`'s options: impossible sampling settings are refused with their range before the model
loads, and --help shows every default and range."""

from __future__ import annotations

import contextlib
import io

import pytest
from export_models import saved

from hfgpt.cli import main


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return saved(tmp_path_factory.mktemp("generate") / "model")


@pytest.mark.parametrize(("flag", "value", "problem"), [
    ("--max-new-tokens", "-5", "--max-new-tokens must be at least 1, got -5"),  # printed only the prompt
    ("--max-new-tokens", "0", "--max-new-tokens must be at least 1, got 0"),
    ("--temperature", "-1", "--temperature must not be negative, got -1.0"),  # decoded greedily
    ("--temperature", "nan", "--temperature must not be negative, got nan"),
    ("--top-k", "-3", "--top-k must not be negative, got -3"),
    ("--top-p", "5", "--top-p must be in (0, 1], got 5.0"),  # sampled as if 1
    ("--top-p", "0", "--top-p must be in (0, 1], got 0.0"),
    ("--num-samples", "0", "--num-samples must be at least 1, got 0"),  # printed nothing
])
def test_impossible_sampling_settings_are_refused_with_their_range(model, capsys, flag, value, problem):
    assert main(["generate", str(model), "--prompt", "The", "--seed", "1", flag, value]) == 2
    out, err = capsys.readouterr()
    assert not out and err == (f"hfgpt: error: Invalid sampling settings: {problem}. `hfgpt generate --help` shows "
                               "each setting's range.\n")


def test_every_problem_is_named_at_once_and_before_the_model_loads(tmp_path, capsys):
    assert main(["generate", str(tmp_path / "no-model"), "--max-new-tokens", "-5", "--top-p", "5"]) == 2
    assert "--max-new-tokens must be at least 1, got -5; --top-p must be in (0, 1], got 5.0." in \
        capsys.readouterr().err


def test_the_edges_of_each_range_are_allowed(model, capsys):
    assert main(["generate", str(model), "--prompt", "The", "--max-new-tokens", "1", "--temperature", "0",
                 "--top-k", "0", "--top-p", "1", "--num-samples", "1"]) == 0
    assert capsys.readouterr().out.startswith("The")


def test_help_shows_every_default_and_range():
    shown = io.StringIO()
    with contextlib.redirect_stdout(shown), pytest.raises(SystemExit):
        main(["generate", "--help"])
    text = " ".join(shown.getvalue().split())  # argparse wraps lines anywhere
    for option in ["--max-new-tokens MAX_NEW_TOKENS tokens to generate after the prompt; must be at least 1 "
                   "(default: 200)", "0 decodes greedily; must not be negative (default: 0.8)",
                   "0 keeps all; must not be negative (default: 0)", "1 keeps all; must be in (0, 1] (default: 1.0)",
                   "must be at least 1 (default: 1)", "text to continue; default: a newline",
                   "makes the samples reproducible; default: none", "else cpu (default: auto)"]:
        assert option in text
