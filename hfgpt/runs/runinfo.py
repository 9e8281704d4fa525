"""`run.json`: what a run is, where it came from, and how it ended, for people and for scripts.

    {"status": "running" | "completed" | "stopped early" | "interrupted" | "failed",
     "mode": "train" | "fork", "parent": null | {"source": ..., ...}, "config": {...},
     "versions": {"hfgpt": ..., "torch": ...}, "created": ..., "updated": ..., "world_size": 2,
     "sessions": [{"mode": "train", "started": ..., "start_step": 0, "end_step": 500, "status": ...}],
     "wandb_id": "..."}

Written by the main process only, atomically (a temporary file renamed over the old one).
"""

from __future__ import annotations

import json
import os
import platform
import time
import uuid
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

from ..files import aside_name, replace_text, strict_json

RUN_INFO = "run.json"
RUNNING, COMPLETED, STOPPED_EARLY, INTERRUPTED, FAILED = "running", "completed", "stopped early", "interrupted", \
    "failed"
_PACKAGES = ("hfgpt", "torch", "transformers", "accelerate", "datasets", "tokenizers", "safetensors", "deepspeed")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def never_ended(run_dir: Path) -> bool:
    """Whether the run's last launch died without saying how it ended (run.json still says running). Read only:
    every process may ask, and a damaged record is the main process's to set aside (`read_run_info`)."""
    try:
        return json.loads((run_dir / RUN_INFO).read_text(encoding="utf-8")).get("status") == RUNNING
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return False


def read_run_info(run_dir: Path) -> dict[str, Any] | None:
    """The saved record; None if there is none or it cannot be read. An unreadable one is set aside (kept,
    with a warning), so that the caller's new record never overwrites it."""
    path = run_dir / RUN_INFO
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(info, dict) and isinstance(info.get("sessions"), list):
            return info
        problem = "it does not hold a run record"
    except (UnicodeDecodeError, ValueError) as error:
        problem = str(error)
    aside = aside_name(path, "unreadable")
    os.replace(path, aside)
    warnings.warn(f"{path} cannot be read ({problem}); it is set aside as {aside.name} and a new run record is "
                  "started, so the earlier sessions are listed only in the set-aside file.", stacklevel=2)
    return None


def write_run_info(run_dir: Path, info: dict[str, Any]) -> None:
    info["updated"] = _now()
    replace_text(run_dir / RUN_INFO, strict_json(info, indent=2) + "\n")


def new_run_info(mode: str, config: dict[str, Any], world_size: int, parent: dict[str, Any] | None) -> dict[str, Any]:
    return {"status": RUNNING, "mode": mode, "parent": parent, "config": config, "versions": package_versions(),
            "created": _now(), "world_size": world_size, "wandb_id": uuid.uuid4().hex[:12], "sessions": []}


def begin_session(info: dict[str, Any], mode: str, start_step: int, config: dict[str, Any]) -> None:
    """Mark the run running again and open a session entry (one per train/continue launch)."""
    info.update(status=RUNNING, config=config, versions=package_versions())
    info["sessions"].append({"mode": mode, "started": _now(), "start_step": start_step, "pid": os.getpid()})


def end_session(info: dict[str, Any], status: str, end_step: int, reason: str = "") -> None:
    info["status"] = status
    info["sessions"][-1].update(ended=_now(), end_step=end_step, status=status, **({"reason": reason} if reason
                                                                                     else {}))
