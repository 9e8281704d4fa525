"""Ground-floor helpers for the files hfgpt writes for people and tools to read."""

from __future__ import annotations

import json
import math
from typing import Any


def strict_json(value: Any, **options: Any) -> str:
    """JSON that every reader accepts: a float that is not finite (a diverged loss, a missing norm) is written
    as null, since Python's NaN and Infinity are not JSON and strict parsers reject the whole file."""
    return json.dumps(_finite(value), allow_nan=False, **options)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value
