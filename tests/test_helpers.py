"""The test helpers that decide a test's outcome by themselves: a missing tool skips here but fails in CI."""

from __future__ import annotations

import json

import pytest
from helpers import import_or_unavailable, running_in_ci, unavailable


@pytest.mark.parametrize(("value", "in_ci"), [("true", True), ("True", True), ("1", True), ("yes", True),
                                              ("false", False), ("0", False), ("", False), (None, False)])
def test_a_missing_tool_skips_the_test_but_fails_it_in_ci(monkeypatch, value, in_ci):
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert running_in_ci() is in_ci
    expected = pytest.fail.Exception if in_ci else pytest.skip.Exception
    # Both outcomes are caught, so that a wrong skip fails this test instead of skipping it.
    with pytest.raises((pytest.fail.Exception, pytest.skip.Exception), match="no mpirun here") as outcome:
        unavailable("no mpirun here")
    assert outcome.type is expected
    with pytest.raises((pytest.fail.Exception, pytest.skip.Exception),
                       match="no_such_module_for_hfgpt cannot be imported") as outcome:
        import_or_unavailable("no_such_module_for_hfgpt")
    assert outcome.type is expected
    assert import_or_unavailable("json") is json
