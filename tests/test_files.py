"""Ground-floor file helpers: JSON that strict readers accept."""

from __future__ import annotations

import json
import math

import pytest

from hfgpt.files import strict_json


def strict_loads(text: str):
    """json.loads that refuses NaN and Infinity, as JavaScript's JSON.parse and jq do."""
    def refuse(constant: str):
        raise ValueError(f"{constant} is not JSON")
    return json.loads(text, parse_constant=refuse)


def test_non_finite_numbers_become_null_at_any_depth():
    value = {"loss": math.nan, "ppl": math.inf, "ok": 1.5, "nested": [{"g": -math.inf}, 2], "t": (math.nan,)}
    assert strict_loads(strict_json(value)) == {"loss": None, "ppl": None, "ok": 1.5, "nested": [{"g": None}, 2],
                                               "t": [None]}


def test_plain_json_would_not_be_readable_by_a_strict_parser():
    with pytest.raises(ValueError, match="NaN is not JSON"):
        strict_loads(json.dumps({"loss": math.nan}))
