"""Where training settings come from, and how they merge into one checked `TrainConfig`.

Lowest priority first: the dataclass defaults of `hfgpt.config`, a TOML preset (`--config`), a flags
file (`--flagsfile`), then the command line. Every field is a flag, spelled `--eval-every`,
`--eval_every` or `--training.eval-every`; `ALIASES` keeps the seed scripts' and nanoGPT's spellings.
Every mistake raises `HfGptError` naming the flag, file or key, with the closest valid names.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import shlex
import textwrap
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, get_type_hints

from .config import TrainConfig
from .errors import HfGptError


class Field(NamedTuple):
    section: str
    name: str
    type: Any  # int, float, bool, str or list[str]
    help: str
    default: Any


def _field_table() -> dict[str, Field]:
    table: dict[str, Field] = {}
    for section, section_class in get_type_hints(TrainConfig).items():
        hints = get_type_hints(section_class)
        for f in dataclasses.fields(section_class):
            # Flags are spelled without their section, so names must be unique across sections.
            assert f.name not in table, f"{f.name} is a field of two config sections"
            default = f.default_factory() if f.default is dataclasses.MISSING else f.default
            table[f.name] = Field(section, f.name, hints[f.name], f.metadata["help"], default)
    return table


FIELDS: dict[str, Field] = _field_table()
SECTIONS: list[str] = list(dict.fromkeys(f.section for f in FIELDS.values()))

# Other spellings of a field's flag: the seed scripts' and nanoGPT's names.
ALIASES: dict[str, str] = {
    "max-iters": "max_steps", "steps": "max_steps",
    "batch": "batch_size", "batchsize": "batch_size",
    "dim": "hidden_size", "n-embd": "hidden_size",
    "heads": "num_attention_heads", "n-head": "num_attention_heads",
    "ff": "intermediate_size",
    "layers": "num_hidden_layers", "n-layer": "num_hidden_layers",
    "seq": "max_position_embeddings", "block-size": "max_position_embeddings",
    "data-path": "train",
    "runname": "run_name",
    "lrcrit": "lr_head",
    "learning-rate": "lr",
    "grad-accum": "grad_accum_steps", "gradient-accumulation-steps": "grad_accum_steps",
    "eval-interval": "eval_every",
    "log-interval": "log_every",
}
_ALIAS_KEYS = {alias.replace("-", "_"): name for alias, name in ALIASES.items()}

# The usage line of each training command, heading its --help.
USAGES = {
    "train": "usage: hfgpt train [--config PRESET|FILE] [--flagsfile FILE] [--FLAG VALUE ...]",
    "continue": "usage: hfgpt continue RUN_DIR [--max-steps N] [--FLAG VALUE ...]",
    "fork": "usage: hfgpt fork SOURCE [--config PRESET|FILE] [--flagsfile FILE] [--FLAG VALUE ...]",
}

_BOOL_WORDS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False,
               "off": False}
_SOURCE_FLAGS = ("--config", "--flagsfile")
_PRESET_DIRS = (Path(__file__).resolve().parents[1] / "recipes" / "configs", Path("recipes") / "configs")


def _dashed(name: str) -> str:
    return name.replace("_", "-")


def flag_of(name: str) -> str:
    """The command-line flag of a field: `max_steps` -> `--max-steps`."""
    return f"--{_dashed(name)}"


def _kind(field: Field) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "text"}.get(
        field.type, "a comma-separated list (none for an empty one)")


def _toml_string(text: str) -> str:
    escapes = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
    control = {ch: f"\\u{ord(ch):04x}" for ch in text if ord(ch) < 0x20 or ord(ch) == 0x7F}
    return '"' + "".join(escapes.get(ch) or control.get(ch, ch) for ch in text) + '"'


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)  # Python's float repr (1e-05, 0.001, inf) is valid TOML
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return "[" + ", ".join(_toml_string(item) for item in value) + "]"
    raise TypeError(f"cannot write {value!r} as a TOML config value")


def _suggest(name: str, candidates: Sequence[str] | Mapping[str, str]) -> str:
    """A "did you mean" hint; a mapping is matched on its keys and shows its values."""
    shown = candidates if isinstance(candidates, Mapping) else {c: c for c in candidates}
    close = difflib.get_close_matches(name, list(shown), n=6, cutoff=0.7)
    picked = list(dict.fromkeys(shown[c] for c in close))[:3]
    return f" Did you mean {' or '.join(picked)}?" if picked else ""


# ---- command-line flags and flags files ----------------------------------------------------------

@dataclasses.dataclass
class _Flags:
    values: dict[str, Any] = dataclasses.field(default_factory=dict)
    configs: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (name, where)
    flagsfiles: list[str] = dataclasses.field(default_factory=list)


def _flag_spellings(dotted: bool) -> dict[str, str]:
    """Spellings a mistyped flag is matched against (without the dashes) -> the flag to suggest."""
    if dotted:
        shown = {_dashed(name): f"--{f.section}.{_dashed(name)}" for name, f in FIELDS.items()}
        return shown | {alias: shown[_dashed(name)] for alias, name in ALIASES.items()}
    names = [flag[2:] for flag in _SOURCE_FLAGS] + [_dashed(name) for name in FIELDS]
    names += [f"no-{_dashed(name)}" for name, f in FIELDS.items() if f.type is bool]
    return {name: f"--{name}" for name in names} | {a: flag_of(name) for a, name in ALIASES.items()}


def _resolve_flag(flag: str, where: str) -> tuple[Field, bool]:
    """`--eval-every`, `--eval_every`, `--training.eval-every`, `--no-bias`, ... -> (field, negated)."""
    section, _, key = flag[2:].replace("-", "_").rpartition(".")
    name = _ALIAS_KEYS.get(key, key)
    negated = False
    if name not in FIELDS and key.startswith("no_"):
        base = _ALIAS_KEYS.get(key[3:], key[3:])
        if base in FIELDS and FIELDS[base].type is bool:
            name, negated = base, True
    if name not in FIELDS or (section and section not in SECTIONS):
        hint = _suggest(_dashed(key), _flag_spellings(dotted=bool(section)))
        raise HfGptError(f"Unknown flag {flag} {where}.{hint} `--help` lists every flag.")
    field = FIELDS[name]
    if section and section != field.section:
        raise HfGptError(f"{flag} {where}: {_dashed(name)} belongs to the {field.section} section; "
                         f"write --{field.section}.{_dashed(name)} or just --{_dashed(name)}.")
    return field, negated


def _parse_text(field: Field, text: str, flag: str, where: str) -> Any:
    """The value of a flag given as text, checked against the field's type."""
    try:
        if field.type is bool:
            return _BOOL_WORDS[text.strip().lower()]
        if field.type is int:
            return int(text)
        if field.type is float:
            value = float(text)
            if not math.isfinite(value):
                raise ValueError(text)
            return value
        if field.type is str:
            return text
        items = [item.strip() for item in text.split(",") if item.strip()]
        return [] if [item.lower() for item in items] == ["none"] else items
    except (KeyError, ValueError):
        example = f"{flag_of(field.name)} / --no-{_dashed(field.name)}" if field.type is bool \
            else f"{flag} {_cli_value(field.default)}"
        raise HfGptError(f"{flag} {where} expects {_kind(field)}, got {text!r}; "
                         f"for example {example}.") from None


def _parse_flags(tokens: Sequence[str], where: str) -> _Flags:
    """Parse `--flag value`, `--flag=value`, `--bool`, `--no-bool`; later flags win."""
    out = _Flags()
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if not token.startswith("--") or token == "--":
            hint = " Flags start with two dashes." if token.startswith("-") else \
                " Every setting is a flag with its value, e.g. --max-steps 500; quote values with spaces."
            raise HfGptError(f"Unexpected argument {token!r} {where}.{hint}")
        flag, has_value, text = token.partition("=")
        field, negated = (None, False) if flag in _SOURCE_FLAGS else _resolve_flag(flag, where)
        if negated and has_value:
            positive = flag_of(field.name)
            raise HfGptError(f"{flag} {where} takes no value; write {flag} or {positive}={text}.")
        if field is not None and field.type is bool and not has_value:
            # A bare boolean flag means true, unless a boolean word follows it.
            value = not negated
            if not negated and i < len(tokens) and tokens[i].lower() in _BOOL_WORDS:
                value = _BOOL_WORDS[tokens[i].lower()]
                i += 1
            out.values[field.name] = value
            continue
        if not has_value:
            if i >= len(tokens) or tokens[i].startswith("--"):
                raise HfGptError(f"{flag} {where} is missing its value; write {flag} VALUE, "
                                 f"or {flag}=VALUE if the value starts with --.")
            text = tokens[i]
            i += 1
        if flag == "--config":
            out.configs.append((text, where))
        elif flag == "--flagsfile":
            out.flagsfiles.append(text)
        else:
            out.values[field.name] = _parse_text(field, text, flag, where)
    return out


def _read_flagsfile(name: str, where: str) -> _Flags:
    """One flag per line; `#` starts a comment (unless quoted); values may be quoted as in a shell."""
    path = Path(name).expanduser()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        reason = getattr(e, "strerror", None) or e
        raise HfGptError(f"--flagsfile {name} {where}: cannot read it ({reason}). "
                         "Check the path; relative paths start at the current directory.") from None
    merged = _Flags()
    for number, line in enumerate(lines, start=1):
        line_where = f"in flags file {path}, line {number}"
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError as e:
            raise HfGptError(f"Cannot read the flag {line_where}: {e}; close the quote.") from None
        flags = _parse_flags(tokens, line_where)
        if flags.flagsfiles:
            raise HfGptError(f"--flagsfile {line_where}: a flags file cannot include another; "
                             "pass both with --flagsfile on the command line.")
        merged.values.update(flags.values)
        merged.configs += flags.configs
    return merged


# ---- TOML presets and saved configs --------------------------------------------------------------

def preset_names() -> list[str]:
    """Names that `--config NAME` resolves under recipes/configs/."""
    return sorted({p.stem for folder in _PRESET_DIRS if folder.is_dir() for p in folder.glob("*.toml")})


def _find_preset(name: str, where: str) -> Path:
    path = Path(name).expanduser()
    if path.is_file():
        return path
    stem = name.removesuffix(".toml")
    if "/" not in stem and "\\" not in stem:
        for folder in _PRESET_DIRS:
            if (folder / f"{stem}.toml").is_file():
                return folder / f"{stem}.toml"
    names = preset_names()
    raise HfGptError(f"--config {name} {where}: there is no such file and no preset of that name."
                     f"{_suggest(stem, names)} Presets: {', '.join(names) or 'none found'}; "
                     "or give the path of a TOML file.")


def _check_value(field: Field, value: Any, source: str) -> Any:
    """A TOML value checked against the field's type (an int is accepted where a float is expected)."""
    t = field.type
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
        raise HfGptError(f"{field.section}.{field.name} in {source} must be {expected}, "
                         f"got {value!r} ({type(value).__name__}).")
    return float(value) if t is float else list(value) if isinstance(value, list) else value


def _unknown_key(section: str, key: str, source: str) -> HfGptError:
    name = _ALIAS_KEYS.get(key.replace("-", "_"), key.replace("-", "_"))
    if name in FIELDS:
        hint = f" Did you mean {name} in [{FIELDS[name].section}]?"
    else:
        hint = _suggest(key, [n for n, f in FIELDS.items() if f.section == section]) or \
            _suggest(key, [f"{f.section}.{n}" for n, f in FIELDS.items()])
    return HfGptError(f"Unknown key {section}.{key} in {source}.{hint} `--help` lists every key by section.")


def _values_from_dict(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for section, table in data.items():
        if section not in SECTIONS:
            name = _ALIAS_KEYS.get(section, section)
            hint = f" Put it under [{FIELDS[name].section}]." if name in FIELDS else \
                _suggest(section, SECTIONS)
            raise HfGptError(f"Unknown section {section!r} in {source}.{hint} "
                             f"The sections are {', '.join(SECTIONS)}.")
        if not isinstance(table, Mapping):
            raise HfGptError(f"{section} in {source} must be a table ([{section}] with key = value lines).")
        for key, value in table.items():
            field = FIELDS.get(key)
            if field is None or field.section != section:
                raise _unknown_key(section, key, source)
            values[key] = _check_value(field, value, source)
    return values


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise HfGptError(f"Cannot read the config file {path} ({e.strerror or e}).") from None
    except tomllib.TOMLDecodeError as e:
        raise HfGptError(f"The config file {path} is not valid TOML: {e}.") from None
    return _values_from_dict(data, str(path))


def _make_config(values: Mapping[str, Any]) -> TrainConfig:
    cfg = TrainConfig()
    for name, value in values.items():
        setattr(getattr(cfg, FIELDS[name].section), name, value)
    return cfg


# ---- public API ----------------------------------------------------------------------------------

def config_from_dict(data: Mapping[str, Any], source: str) -> TrainConfig:
    """{section: {key: value}} (a parsed TOML, a saved config) -> TrainConfig; missing keys keep defaults.

    Types and names are checked (errors name `source`); call `.validate()` for the value checks.
    """
    return _make_config(_values_from_dict(data, source))


def config_values(cfg: TrainConfig) -> dict[str, Any]:
    """Every setting of `cfg` by field name (the form `build_config` takes as its base)."""
    return {name: getattr(getattr(cfg, f.section), name) for name, f in FIELDS.items()}


def build_config(argv: Sequence[str], prog: str = "hfgpt train", base: Mapping[str, Any] | None = None,
                 usage: str = "") -> TrainConfig:
    """Merge defaults < `base` < --config preset < --flagsfile < command-line flags, validate, and return.

    `base` (field name -> value) is a saved run's config when continuing it. `-h`/`--help` prints
    the flag reference, headed by `usage` if given, and raises SystemExit(0).
    """
    if "-h" in argv or "--help" in argv:
        print(format_help(prog, usage))
        raise SystemExit(0)
    cli = _parse_flags(list(argv), "on the command line")
    files = [_read_flagsfile(name, "on the command line") for name in cli.flagsfiles]
    values: dict[str, Any] = dict(base or {})
    for name, where in [c for f in files for c in f.configs] + cli.configs:
        values.update(_read_toml(_find_preset(name, where)))
    for flags in [*files, cli]:
        values.update(flags.values)
    return _make_config(values).validate()


def config_to_toml(cfg: TrainConfig) -> str:
    """Every setting as TOML that `--config` reads back to an equal config."""
    lines = ["# hfgpt training config; train with it again: hfgpt train --config THIS_FILE"]
    for section in SECTIONS:
        lines += ["", f"[{section}]"]
        values = getattr(cfg, section)
        lines += [f"{name} = {_toml_value(getattr(values, name))}"
                  for name, f in FIELDS.items() if f.section == section]
    return "\n".join(lines) + "\n"


def describe_settings(cfg: TrainConfig) -> str:
    """The settings that differ from the defaults, as the flags that would set them (a config's essence)."""
    changed = [f"{flag_of(name)} {_shell_value(value)}" for name, value in config_values(cfg).items()
               if value != FIELDS[name].default]
    return " ".join(changed) if changed else "the defaults"


def _shell_value(value: Any) -> str:
    """A value as a shell would take it back; text that is not printable (a newline) in TOML's quotes."""
    text = _cli_value(value) if not isinstance(value, str) else value
    return shlex.quote(text) if text.isprintable() else _toml_string(text)


def _cli_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(value) or "none"
    if isinstance(value, str):
        return _toml_string(value)
    return repr(value)


def format_help(prog: str = "hfgpt train", usage: str = "") -> str:
    """The `--help` text: every flag by section, with its help, default and aliases."""
    wrap = textwrap.TextWrapper(width=110, initial_indent=" " * 32, subsequent_indent=" " * 32,
                                 break_on_hyphens=False)
    metavar = {int: " INT", float: " FLOAT", str: " TEXT", bool: ""}

    def entry(spec: str, text: str) -> list[str]:
        body = wrap.fill(text)
        return [f"  {spec:<29} {body[32:]}" if len(spec) < 30 else f"  {spec}\n{body}"]

    lines = [usage or USAGES["train"].replace("hfgpt train", prog), "",
             textwrap.fill("Settings come from, lowest priority first: the defaults, the --config preset, "
                           "the --flagsfile, then the flags given here. Spell a flag with dashes or "
                           "underscores, or prefixed by its section (--training.lr); give its value as "
                           "--flag VALUE or --flag=VALUE. Booleans: --bias, --no-bias, --bias=false.",
                           width=110), ""]
    lines += ["sources:"]
    lines += entry("--config PRESET|FILE", "A TOML file, or a preset in recipes/configs: "
                   + (", ".join(preset_names()) or "none found") + ". May be repeated; later ones win.")
    lines += entry("--flagsfile FILE", "A file with one flag per line; # starts a comment, values may "
                   "be quoted. Beats --config, loses to flags on the command line.")
    lines += entry("-h, --help", "Show this help and exit.")
    aliases: dict[str, list[str]] = {}
    for alias, name in ALIASES.items():
        aliases.setdefault(name, []).append(f"--{alias}")
    for section in SECTIONS:
        lines += ["", f"{section} (TOML section [{section}]):"]
        for name, f in FIELDS.items():
            if f.section != section:
                continue
            spec = f"--[no-]{_dashed(name)}" if f.type is bool else \
                f"{flag_of(name)}{metavar.get(f.type, ' LIST')}"
            text = f"{f.help} Default: {_cli_value(f.default)}."
            if name in aliases:
                text += f" Aliases: {', '.join(aliases[name])}."
            lines += entry(spec, text)
    return "\n".join(lines)
