"""--run-name is a name inside --rundir: plain names nested or not, never a path, an odd character or a flag."""

from __future__ import annotations

import pytest

from hfgpt.config.run_names import check_run_name
from hfgpt.errors import HfGptError

VALID_NAMES = ["exp1", "exp1/lr-3e-4", "a.b_c-d+e=f@g", "20260101-120000-ann", "x" * 200, "a/b/c/d", "run.2"]
INVALID_NAMES = [
    ("..", "'..' is a step in a path"), (".", "'.' is a step in a path"), ("../escape", "'..' is a step"),
    ("a/../../b", "'..' is a step"), ("/some/where", "starts with /"), ("~/x", "holds '~'"),
    ("a//b", "empty part"), ("exp1/", "empty part"), ("-x", "starts with '-'"), ("a/-rf", "starts with '-'"),
    (".hidden", "starts with '.'"), ("x;rm -rf y", "holds ';'"), ("my run", "holds ' '"), ("a\\b", "holds '\\\\'"),
    ("$HOME", "holds '$'"), ("naïve", "holds 'ï'"), ("a\nb", "holds '\\n'"), ("x" * 201, "longer than 200"),
    ("a/" * 500 + "a", "longer than 1000"),
]


@pytest.mark.parametrize("name", VALID_NAMES)
def test_plain_names_nested_or_not_are_run_names(name):
    check_run_name(name)


@pytest.mark.parametrize(("name", "why"), INVALID_NAMES)
def test_paths_and_odd_characters_are_refused_naming_the_rule_and_a_valid_spelling(name, why):
    with pytest.raises(HfGptError) as error:
        check_run_name(name)
    message = str(error.value)
    assert message.startswith(f"--run-name {name!r} is not a valid run name ("), message
    assert why in message and "for example --run-name exp1/lr-3e-4" in message and "\n" not in message


def test_an_empty_run_name_means_the_default():
    check_run_name("")
