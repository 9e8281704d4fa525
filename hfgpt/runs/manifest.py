"""A checkpoint's manifest, `checkpoint.json`: the size and SHA-256 of every file in the folder, and of the
manifest itself. Written last, it is the mark that a checkpoint is complete; read first, it catches a file
that was truncated, flipped or replaced since, and names it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..files import fsync, sha256_of

MANIFEST = "checkpoint.json"


def write_manifest(folder: Path, step: int) -> None:
    """Seal `folder`: flush every file, then write the manifest and flush it and the folder."""
    files = {p.relative_to(folder).as_posix(): {"bytes": p.stat().st_size, "sha256": sha256_of(p)}
             for p in sorted(folder.rglob("*")) if p.is_file()}
    for path in sorted(folder.rglob("*")):
        fsync(path)
    content = {"step": step, "files": files}
    (folder / MANIFEST).write_text(json.dumps({**content, "sha256": _seal(content)}, indent=1))
    fsync(folder / MANIFEST)
    fsync(folder)


def manifest_problem(folder: Path, required: tuple[str, ...]) -> str:
    """Why `folder` does not match its manifest (or the manifest lacks a `required` file), or ""."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        files = manifest["files"]
        sealed = manifest.get("sha256", "")  # older manifests have none
        if sealed and sealed != _seal(manifest):
            return f"its {MANIFEST} does not match its own checksum (the manifest is corrupt)"
    except FileNotFoundError:
        return f"it has no {MANIFEST} (it was not completely written)"
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        return f"its {MANIFEST} is unreadable ({error})"
    missing = [name for name in required if name not in files]
    if missing:
        return f"its manifest does not list {missing[0]}"
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != expected["bytes"]:
            return f"{name} has {path.stat().st_size} bytes, not the {expected['bytes']} that were saved"
        if sha256_of(path) != expected["sha256"]:
            return f"{name} does not match the checksum it was saved with (the file is corrupt)"
    return ""


def _seal(content: dict[str, Any]) -> str:
    """The manifest's checksum of its own content, so that damage to it is named as such and not blamed on
    a file whose recorded checksum it changed."""
    return hashlib.sha256(json.dumps({"step": content["step"], "files": content["files"]}, sort_keys=True)
                          .encode()).hexdigest()
