"""The experiment trackers a run logs to: names that accelerate knows, each checked to be installed before any
work is done, so that a typo or a missing package stops the launch at once instead of leaving an untracked run.

W&B and Trackio are started here rather than by accelerate's names, because accelerate would make the project
the run's name: their project is `--wandb-project`, else `$WANDB_PROJECT`, else "hfgpt", and the run's name is
the tracked run's name. W&B writes under the run's logs/; Trackio keeps its local database (`$TRACKIO_DIR`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from accelerate.tracking import LOGGER_TYPE_TO_CLASS, get_available_trackers

from ..config import LoggingSection, TrainConfig
from ..errors import HfGptError

# What to install for a tracker that is missing; the others are the PyPI package of the same name.
_INSTALL = {"wandb": 'pip install "hfgpt[tracking]"', "trackio": 'pip install "hfgpt[tracking]"'}
DEFAULT_PROJECT = "hfgpt"


def check_trackers(names: list[str]) -> list[str]:
    """The trackers to start (none for `none` or an empty list), after checking each name and installation."""
    asked = [name for name in names if name != "none"]
    unknown = [name for name in asked if name not in LOGGER_TYPE_TO_CLASS]
    if unknown:
        raise HfGptError(f"--trackers {','.join(names)}: {', '.join(map(repr, unknown))} is not a tracker that "
                         f"accelerate knows. Choose among {', '.join(LOGGER_TYPE_TO_CLASS)}, or none.")
    available = {str(getattr(tracker, "value", tracker)) for tracker in get_available_trackers()}
    missing = [name for name in asked if name not in available]
    if missing:
        how = "; ".join(f"{name}: {_INSTALL.get(name, f'pip install {name}')}" for name in missing)
        raise HfGptError(f"--trackers asks for {', '.join(missing)}, which is not installed here ({how}); or leave "
                         "it out of --trackers.")
    return list(dict.fromkeys(asked))


def flat_hparams(cfg: TrainConfig) -> dict[str, Any]:
    """The config as `section.key` scalars, the form trackers accept as hyperparameters."""
    return {f"{section}.{key}": ",".join(value) if isinstance(value, list) else value
            for section, values in cfg.to_dict().items() for key, value in values.items()}


def tracker_project(logging: LoggingSection) -> str:
    return logging.wandb_project or os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT


def wandb_options(logging: LoggingSection, run_name: str, run_id: str, logs: Path) -> dict[str, Any]:
    """`wandb.init` keywords: the run resumes `run_id` (this run's own, or --wandb-resume-id) if it exists."""
    options = {"project": tracker_project(logging), "name": run_name, "id": run_id, "resume": "allow",
               "dir": str(logs), "entity": logging.wandb_entity or None, "group": logging.wandb_group or None,
               "job_type": logging.wandb_job_type or None}
    if logging.wandb_mode != "auto":
        options["mode"] = logging.wandb_mode
    return {key: value for key, value in options.items() if value is not None}


def with_projects(log_with: list[Any], logging: LoggingSection, run_name: str, run_id: str,
                  logs: Path) -> list[Any]:
    """`log_with` with W&B and Trackio made into accelerate's trackers of their project (accelerate starts an
    instance as it is, in `Accelerator.init_trackers`)."""
    trackers: list[Any] = []
    for tracker in log_with:
        name = str(getattr(tracker, "value", tracker))
        if name == "wandb":
            options = wandb_options(logging, run_name, run_id, logs)
            tracker = LOGGER_TYPE_TO_CLASS[name](options.pop("project"), **options)
        elif name == "trackio":
            tracker = LOGGER_TYPE_TO_CLASS[name](tracker_project(logging), name=run_name, resume="allow")
        trackers.append(tracker)
    return trackers
