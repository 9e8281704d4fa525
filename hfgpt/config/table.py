"""The settings as one table, by field name, for the modules that read and write them.

Flags are spelled without their section, so a name is unique across sections.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, get_type_hints

from .fields import Rules, rules_of
from .schema import TrainConfig


class Field(NamedTuple):
    section: str
    name: str
    type: Any  # int, float, bool, str or list[str]
    default: Any
    rules: Rules

    @property
    def help(self) -> str:
        return self.rules.help


def _field_table() -> dict[str, Field]:
    table: dict[str, Field] = {}
    for section, section_class in get_type_hints(TrainConfig).items():
        hints = get_type_hints(section_class)
        for f in dataclasses.fields(section_class):
            assert f.name not in table, f"{f.name} is a field of two config sections"
            default = f.default_factory() if f.default is dataclasses.MISSING else f.default
            table[f.name] = Field(section, f.name, hints[f.name], default, rules_of(f))
    return table


FIELDS: dict[str, Field] = _field_table()
SECTIONS: list[str] = list(dict.fromkeys(f.section for f in FIELDS.values()))
# Other spellings of the flags (the seed scripts' and nanoGPT's names): alias -> field name.
ALIASES: dict[str, str] = {alias: f.name for f in FIELDS.values() for alias in f.rules.aliases}


def dashed(name: str) -> str:
    return name.replace("_", "-")


def flag_of(name: str) -> str:
    """The command-line flag of a field: `max_steps` -> `--max-steps`."""
    return f"--{dashed(name)}"


def shown_value(value: Any) -> str:
    """A value as `--help` and examples show it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(value) or "none"
    if isinstance(value, str):
        return toml_string(value)
    return repr(value)


def toml_string(text: str) -> str:
    escapes = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
    control = {ch: f"\\u{ord(ch):04x}" for ch in text if ord(ch) < 0x20 or ord(ch) == 0x7F}
    return '"' + "".join(escapes.get(ch) or control.get(ch, ch) for ch in text) + '"'


def config_values(cfg: TrainConfig) -> dict[str, Any]:
    """Every setting of `cfg` by field name."""
    return {name: getattr(getattr(cfg, f.section), name) for name, f in FIELDS.items()}


def make_config(values: dict[str, Any]) -> TrainConfig:
    """A config with `values` (field name -> value) over the defaults; not yet validated."""
    cfg = TrainConfig()
    for name, value in values.items():
        setattr(getattr(cfg, FIELDS[name].section), name, value)
    return cfg
