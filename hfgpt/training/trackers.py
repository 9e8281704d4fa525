"""The experiment trackers a run logs to: names that accelerate knows, each checked to be installed before any
work is done, so that a typo or a missing package stops the launch at once instead of leaving an untracked run."""

from __future__ import annotations

from typing import Any

from accelerate.tracking import LOGGER_TYPE_TO_CLASS, get_available_trackers

from ..config import TrainConfig
from ..errors import HfGptError

# What to install for a tracker that is missing; the others are the PyPI package of the same name.
_INSTALL = {"wandb": 'pip install "hfgpt[tracking]"', "trackio": 'pip install "hfgpt[tracking]"'}


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
