"""The corpora the benchmarks measure on by default: the team's, in `shared/data/` beside the checkout (never
copied into the project). A benchmark takes another text by a flag, and needs one where the checkout has none."""

from __future__ import annotations

from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def tinyshakespeare() -> Path | None:
    """tinyshakespeare.txt beside the checkout, or None where it is not there."""
    path = SHARED_DATA / "tinyshakespeare.txt"
    return path if path.is_file() else None
