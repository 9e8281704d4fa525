"""The default training text: Python's own standard library, present wherever hfgpt runs.

It needs no download, so `hfgpt train` works offline out of the box, and Python source has
enough structure (indentation, names, docstrings) for a small model to visibly learn something.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path


def default_corpus_files() -> list[Path]:
    """The top-level `*.py` files of the running interpreter's standard library, sorted by name.

    Exactly: the regular files matching `*.py` directly inside `sysconfig.get_paths()["stdlib"]`
    (no subpackages such as `json/` or `test/`, no `site-packages`), sorted by file name. Each file
    is one document. On CPython 3.11 that is about 168 files, 4.7 MB; the set depends on the Python
    version, so a cache built on one version is not reused by another (its paths and sizes differ).
    """
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    return sorted((path for path in stdlib.glob("*.py") if path.is_file()), key=lambda path: path.name)
