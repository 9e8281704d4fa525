"""The training configuration: what can be set, with its rules (`schema`, `fields`), and where values come
from (`sources`: presets, TOML files, flags files and the command line, parsed by `flags`).

Imports only the ground floor (errors, files), so that `hfgpt train --help` needs neither torch nor
transformers. Presets ship inside the package (presets/*.toml).
"""

from .depth import Derived, depth_table
from .model_section import model_config_kwargs
from .schema import (
    CheckpointSection,
    DataSection,
    HubSection,
    LoggingSection,
    ModelSection,
    RunSection,
    TrainConfig,
    TrainingSection,
)
from .sources import (
    USAGES,
    build_config,
    build_config_with_derivation,
    config_from_dict,
    config_to_toml,
    describe_settings,
    format_help,
    preset_names,
    saved_run_config,
    shareable_value,
)
from .table import ALIASES, FIELDS, SECTIONS, config_values, flag_of

__all__ = [
    "ALIASES", "FIELDS", "SECTIONS", "USAGES", "CheckpointSection", "DataSection", "Derived", "HubSection",
    "LoggingSection", "ModelSection", "RunSection", "TrainConfig", "TrainingSection", "build_config",
    "build_config_with_derivation", "config_from_dict", "config_to_toml", "config_values", "depth_table",
    "describe_settings", "flag_of", "format_help", "model_config_kwargs", "preset_names", "saved_run_config",
    "shareable_value",
]
