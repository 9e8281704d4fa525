"""Where settings come from, and how they merge into one checked `TrainConfig`.

Lowest priority first: the defaults (`hfgpt.config.schema`), TOML presets or files (`--config`), an architecture
file (`--arch`, `hfgpt.config.arch`: the model settings only), flags files (`--flagsfile`), then the command line
(`hfgpt.config.flags`); last, `--depth` derives the size and training of the settings none of them gave
(`hfgpt.config.depth`). A preset is a TOML file shipped in the package
(hfgpt/config/presets/) or found under ./recipes/configs/. Every mistake raises `HfGptError` naming the
flag, file or key, with the closest valid names.
"""

from __future__ import annotations

import math
import re
import shlex
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import HfGptError
from .arch import arch_values
from .depth import Derived, check_depth, derive
from .flags import parse_flags, parser, read_flagsfile, suggest
from .model_section import ARCHITECTURE_FIELDS
from .schema import TrainConfig
from .table import FIELDS, SECTIONS, config_values, flag_of, make_config, shown_value, toml_string

PRESET_DIRS = (Path(__file__).resolve().parent / "presets", Path("recipes") / "configs")
# The usage line of each training command, heading its --help.
USAGES = {
    "train": "usage: hfgpt train [--config PRESET|FILE] [--flagsfile FILE] [--FLAG VALUE ...]",
    "continue": "usage: hfgpt continue RUN_DIR [--max-steps N] [--FLAG VALUE ...]",
    "fork": "usage: hfgpt fork SOURCE [--config PRESET|FILE] [--flagsfile FILE] [--FLAG VALUE ...]",
}


def preset_names() -> list[str]:
    """Names that `--config NAME` resolves: the package's presets and ./recipes/configs/*.toml."""
    return sorted({p.stem for folder in PRESET_DIRS if folder.is_dir() for p in folder.glob("*.toml")})


def build_config(argv: Sequence[str], prog: str = "hfgpt train", base: Mapping[str, Any] | None = None,
                 usage: str = "") -> TrainConfig:
    """Merge defaults < `base` < --config presets < --flagsfile < command-line flags, validate, and return.

    `base` (field name -> value) is a saved run's config when continuing it. `-h`/`--help` prints
    the flag reference, headed by `usage` if given, and raises SystemExit(0).
    """
    return build_config_with_derivation(argv, prog, base, usage)[0]


def build_config_with_derivation(argv: Sequence[str], prog: str = "hfgpt train",
                                 base: Mapping[str, Any] | None = None, usage: str = "",
                                 ) -> tuple[TrainConfig, list[Derived]]:
    """`build_config`, and what --depth derived from the settings not given, for the start of the run to print.

    Given means set by `base` (all of a continued run's settings), a --config file, --arch, a flags file or a
    flag, even to its default value (as the quickstart preset restates them); a default no source names is not.
    """
    if "-h" in argv or "--help" in argv:
        print(format_help(prog, usage))
        raise SystemExit(0)
    presets = ", ".join(preset_names())
    cli = parse_flags(argv, "on the command line", presets)
    files = [read_flagsfile(name, "on the command line", presets) for name in cli.flagsfiles]
    values: dict[str, Any] = dict(base or {})
    given = set(values)
    for name, where in [c for f in files for c in f.configs] + cli.configs:
        preset = _read_toml(_find_preset(name, where))
        values.update(preset)
        given |= preset.keys()
    flagged = {name for flags in [*files, cli] for name in flags.values}
    for flags in [*files, cli]:
        values.update(flags.values)
    if values.get("arch"):  # below the flags, above presets: then resolved into the model settings it gives
        found = arch_values(values["arch"], values.get("archdir", ""), _model_table)
        values |= {name: value for name, value in found.items() if name not in flagged} | {"arch": "", "archdir": ""}
        given |= found.keys()
    cfg = make_config(values)
    derived = _derived(cfg, given | flagged)
    if derived:
        cfg = make_config(values | {row.name: row.value for row in derived})
    return cfg.validate(), derived


def _derived(cfg: TrainConfig, given: set[str]) -> list[Derived]:
    """What --depth derives; nothing from values that their own setting refuses (validate names each)."""
    if not cfg.model.depth:
        return []
    check_depth(cfg.model.depth)
    return [] if cfg.field_problems() else derive(config_values(cfg), given)


def format_help(prog: str = "hfgpt train", usage: str = "") -> str:
    """The `--help` text: every flag by section, with its help, default and aliases."""
    return parser(prog, usage or USAGES["train"].replace("hfgpt train", prog), ", ".join(preset_names()) or
                  "none found").format_help()


def config_from_dict(data: Mapping[str, Any], source: str) -> TrainConfig:
    """{section: {key: value}} (a parsed TOML, a saved config) -> TrainConfig; missing keys keep defaults.

    Types and names are checked (errors name `source`); call `.validate()` for the value checks.
    """
    return make_config(_values_from_dict(data, source))


def saved_run_config(data: Mapping[str, Any], source: str) -> TrainConfig:
    """A run's saved config.toml -> TrainConfig: like `config_from_dict`, but a setting the file does not have
    (added after the run was saved) takes what the run did then (`implied_before`), if that is not the default."""
    given = {key for table in data.values() if isinstance(table, Mapping) for key in table}
    implied = {name: f.rules.implied_before for name, f in FIELDS.items()
               if name not in given and f.rules.implied_before is not None}
    return make_config({**implied, **_values_from_dict(data, source)})


def config_to_toml(cfg: TrainConfig) -> str:
    """Every setting as TOML that `--config` reads back to an equal config."""
    lines = ["# hfgpt training config; train with it again: hfgpt train --config THIS_FILE"]
    for section in SECTIONS:
        lines += ["", f"[{section}]"]
        lines += [f"{name} = {_toml_value(getattr(getattr(cfg, section), name))}"
                  for name, f in FIELDS.items() if f.section == section]
    return "\n".join(lines) + "\n"


def describe_settings(cfg: TrainConfig, shareable: bool = False) -> str:
    """The settings that differ from the defaults, as the flags that would set them (a config's essence).
    `shareable`: as a published model card may show them, without this machine's folders and with its files
    named by their names only, so that a card does not publish a user's directory layout."""
    changed = []
    for name, value in config_values(cfg).items():
        if value != FIELDS[name].default and shareable:
            value = shareable_value(value, FIELDS[name].rules.local)
        if value is not None and value != FIELDS[name].default:
            changed.append(f"{flag_of(name)} {_shell_value(value)}")
    return " ".join(changed) if changed else "the defaults"


def shareable_value(value: Any, local: str) -> Any:
    """`value` of a setting whose `local` kind is given, as a published card may show it: None for a folder of
    this machine, the last part of each file or folder it names, anything else as it is."""
    if local == "folder":
        return None
    if local == "files":
        return ",".join(_file_name(item.strip()) for item in value.split(",") if item.strip())
    if local == "path-or-name" and _names_a_local_path(value):
        return Path(value).name
    return value


def _file_name(item: str) -> str:
    """The last part of a file or folder of --train or --valid, with a mixture's NAME= and :WEIGHT kept."""
    match = _WEIGHTED.fullmatch(item)
    assert match is not None  # every part of the pattern may be empty
    return f"{match['name']}{Path(match['path']).name}{match['weight']}"


_WEIGHTED = re.compile(r"(?P<name>(?:[A-Za-z0-9][A-Za-z0-9_.-]*=)?)(?P<path>.*?)(?P<weight>(?::[-+0-9.eE@/]*)?)")


def _names_a_local_path(value: str) -> bool:
    path = Path(value).expanduser()
    return path.is_absolute() or value.startswith((".", "~")) or path.exists()


def _shell_value(value: Any) -> str:
    """A value as a shell would take it back; text that is not printable (a newline) in TOML's quotes."""
    text = shown_value(value) if not isinstance(value, str) else value
    return shlex.quote(text) if text.isprintable() else toml_string(text)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)  # Python's float repr (1e-05, 0.001, inf) is valid TOML
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return "[" + ", ".join(toml_string(item) for item in value) + "]"
    raise TypeError(f"cannot write {value!r} as a TOML config value")


def _find_preset(name: str, where: str) -> Path:
    path = Path(name).expanduser()
    if path.is_file():
        return path
    stem = name.removesuffix(".toml")
    if "/" not in stem and "\\" not in stem:
        for folder in PRESET_DIRS:
            if (folder / f"{stem}.toml").is_file():
                return folder / f"{stem}.toml"
    names = preset_names()
    raise HfGptError(f"--config {name} {where}: there is no such file and no preset of that name."
                     f"{suggest(stem, names)} Presets: {', '.join(names) or 'none found'}; "
                     "or give the path of a TOML file.")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise HfGptError(f"Cannot read the config file {path} ({e.strerror or e}).") from None
    except tomllib.TOMLDecodeError as e:
        raise HfGptError(f"The config file {path} is not valid TOML: {e}.") from None
    return _values_from_dict(data, str(path))


def _values_from_dict(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    known_sections = {*SECTIONS, *(f.rules.former_section for f in FIELDS.values() if f.rules.former_section)}
    for section, table in data.items():
        if section not in known_sections:
            name = _field_named(section)
            hint = f" Put it under [{FIELDS[name].section}]." if name else suggest(section, SECTIONS)
            raise HfGptError(f"Unknown section {section!r} in {source}.{hint} "
                             f"The sections are {', '.join(SECTIONS)}.")
        if not isinstance(table, Mapping):
            raise HfGptError(f"{section} in {source} must be a table ([{section}] with key = value lines).")
        for key, value in table.items():
            f = FIELDS.get(key)
            if f is None or section not in (f.section, f.rules.former_section):
                raise _unknown_key(section, key, source)
            values[key] = _checked(f.section, key, value, source)
    return values


def _model_table(table: Mapping[str, Any], source: str) -> dict[str, Any]:
    """A [model] table's values, checked; only the architecture may be set from an --arch file."""
    values = _values_from_dict({"model": table}, source)
    for name in values.keys() - set(ARCHITECTURE_FIELDS):
        raise HfGptError(f"{name} in {source} is not part of the architecture; give it as a flag (--arch sets only "
                         f"{', '.join(ARCHITECTURE_FIELDS)}).")
    return values


def _field_named(key: str) -> str | None:
    """The field that `key` names, by its own name or an alias, with dashes or underscores."""
    key = key.replace("-", "_")
    return next((f.name for f in FIELDS.values() if key in (f.name, *(a.replace("-", "_") for a in f.rules.aliases))),
                None)


def _unknown_key(section: str, key: str, source: str) -> HfGptError:
    name = _field_named(key)
    if name:
        hint = f" Did you mean {name} in [{FIELDS[name].section}]?"
    else:
        hint = suggest(key, [n for n, f in FIELDS.items() if f.section == section]) or \
            suggest(key, [f"{f.section}.{n}" for n, f in FIELDS.items()])
    return HfGptError(f"Unknown key {section}.{key} in {source}.{hint} `--help` lists every key by section.")


def _checked(section: str, name: str, value: Any, source: str) -> Any:
    """A TOML value checked against the field's type (an int is accepted where a float is expected)."""
    t = FIELDS[name].type
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = {
        bool: isinstance(value, bool),
        int: number and isinstance(value, int),
        float: number and math.isfinite(value),
        str: isinstance(value, str),
    }.get(t, isinstance(value, list) and all(isinstance(item, str) for item in value))
    if not ok:
        expected = {bool: "true or false (unquoted)", int: "an integer", float: "a number",
                    str: "a quoted string"}.get(t, 'a list of strings such as ["tensorboard"]')
        raise HfGptError(f"{section}.{name} in {source} must be {expected}, got {value!r} ({type(value).__name__}).")
    return float(value) if t is float else list(value) if isinstance(value, list) else value
