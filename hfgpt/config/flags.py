"""Command-line flags and flags files, parsed by an argparse parser generated from the config's fields.

Every field is a flag, spelled `--eval-every`, `--eval_every` or `--training.eval-every`, and under the
aliases its `setting` lists (the seed scripts' and nanoGPT's names); a boolean also takes `--no-x` and a
word (`--bias false`, `--bias=off`). argparse does the parsing; hfgpt words the mistakes, naming the flag as
it was typed, where it was (the command line, or a flags file and its line), and the closest valid flags.
"""

from __future__ import annotations

import argparse
import difflib
import math
import shlex
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from ..errors import HfGptError
from .table import FIELDS, SECTIONS, Field, dashed, flag_of, shown_value

BOOL_WORDS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False,
              "off": False}
SOURCE_FLAGS = ("--config", "--flagsfile")
_KIND = {int: "an integer", float: "a number", bool: "true or false", str: "text"}
_METAVAR = {int: "INT", float: "FLOAT", str: "TEXT"}


@dataclass
class Flags:
    """What one command line or flags file says: settings by field name, and the sources it names."""

    values: dict[str, Any] = field(default_factory=dict)
    configs: list[tuple[str, str]] = field(default_factory=list)  # (preset or file, where it was named)
    flagsfiles: list[str] = field(default_factory=list)


def kind(f: Field) -> str:
    return _KIND.get(f.type, "a comma-separated list (none for an empty one)")


def parse_value(f: Field, text: str, flag: str, where: str) -> Any:
    """The value of a flag given as text, checked against the field's type."""
    try:
        if f.type is bool:
            return BOOL_WORDS[text.strip().lower()]
        if f.type is int:
            return int(text)
        if f.type is float:
            value = float(text)
            if not math.isfinite(value):
                raise ValueError(text)
            return value
        if f.type is str:
            return text
        items = [item.strip() for item in text.split(",") if item.strip()]
        return [] if [item.lower() for item in items] == ["none"] else items
    except (KeyError, ValueError):
        example = f"{flag_of(f.name)} / --no-{dashed(f.name)}" if f.type is bool else \
            f"{flag} {shown_value(f.default)}"
        raise HfGptError(f"{flag} {where} expects {kind(f)}, got {text!r}; for example {example}.") from None


class _Setting(argparse.Action):
    """Stores one field's value, parsed and checked where argparse would only see text."""

    def __init__(self, option_strings: list[str], dest: str, negates: bool = False, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs="?", default=argparse.SUPPRESS, **kwargs)
        self.negates = negates

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, text: str | None,
                 option_string: str | None = None) -> None:
        f, flag, where = FIELDS[self.dest], option_string or "", parser.where
        if self.negates:
            if text is not None:
                raise HfGptError(f"{flag} {where} takes no value; write {flag} or {flag_of(f.name)}={text}.")
            value = False
        elif text is None:
            if f.type is not bool:
                raise HfGptError(f"{flag} {where} is missing its value; write {flag} VALUE, or {flag}=VALUE if "
                                 "the value starts with --.")
            value = True
        else:
            value = parse_value(f, text, flag, where)
        setattr(namespace, self.dest, value)


class _Source(argparse.Action):
    """--config and --flagsfile: collected in order, read by hfgpt.config.sources."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs="?", default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, text: str | None,
                 option_string: str | None = None) -> None:
        if text is None:
            raise HfGptError(f"{option_string} {parser.where} is missing its value; write {option_string} VALUE.")
        getattr(namespace, self.dest, None) or setattr(namespace, self.dest, [])
        getattr(namespace, self.dest).append(text)


class _Parser(argparse.ArgumentParser):
    where = "on the command line"  # set for each parse, for messages

    def error(self, message: str) -> None:  # argparse's own complaints, worded the hfgpt way
        raise HfGptError(f"{message} {self.where}. `--help` lists every flag.")


class _Help(argparse.HelpFormatter):
    """One line per setting: `--eval-every INT` or `--[no-]bias`; aliases and the default go in its help."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32, width=110)

    def _split_lines(self, text: str, width: int) -> list[str]:  # never break a flag at its dashes
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return textwrap.fill(" ".join(text.split()), width, initial_indent=indent, subsequent_indent=indent,
                             break_on_hyphens=False)

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if isinstance(action, _Setting):
            f = FIELDS[action.dest]
            return f"--[no-]{dashed(f.name)}" if f.type is bool else f"{flag_of(f.name)} {_METAVAR.get(f.type, 'LIST')}"
        if isinstance(action, _Source):
            return f"{action.option_strings[0]} {action.metavar}"
        return super()._format_action_invocation(action)


@cache
def parser(prog: str, usage: str, preset_list: str) -> _Parser:
    """The flag parser: one visible entry per setting, by section, and hidden entries for other spellings."""
    p = _Parser(prog=prog, usage=usage.removeprefix("usage: "), add_help=False, allow_abbrev=False,
                exit_on_error=False, formatter_class=_Help,
                description="Settings come from, lowest priority first: the defaults, the --config preset, the "
                            "--flagsfile, then the flags given here. Spell a flag with dashes or underscores, or "
                            "prefixed by its section (--training.lr); give its value as --flag VALUE or "
                            "--flag=VALUE. Booleans: --bias, --no-bias, --bias=false.")
    sources = p.add_argument_group("sources")
    sources.add_argument("--config", action=_Source, dest="configs", metavar="PRESET|FILE",
                         help=f"A TOML file, or a preset: {preset_list}. May be repeated; later ones win.")
    sources.add_argument("--flagsfile", action=_Source, dest="flagsfiles", metavar="FILE",
                         help="A file with one flag per line; # starts a comment, values may be quoted. Beats "
                              "--config, loses to flags on the command line.")
    sources.add_argument("-h", "--help", action="help", help="Show this help and exit.")
    groups = {section: p.add_argument_group(f"{section} (TOML section [{section}])") for section in SECTIONS}
    for f in FIELDS.values():
        text = f"{f.rules.help} Default: {shown_value(f.default)}."
        if f.rules.aliases:
            text += f" Aliases: {', '.join('--' + alias for alias in f.rules.aliases)}."
        groups[f.section].add_argument(*_spellings(f, f.name), *_spellings(f, *f.rules.aliases), action=_Setting,
                                       dest=f.name, help=text)
        if f.type is bool:
            p.add_argument(*_spellings(f, *(f"no-{name}" for name in (f.name, *f.rules.aliases))), action=_Setting,
                           dest=f.name, negates=True, help=argparse.SUPPRESS)
    return p


def _spellings(f: Field, *names: str) -> list[str]:
    """Every way to type the flags of `names`: dashes or underscores, bare or after the section."""
    sections = [f.section, f.rules.former_section] if f.rules.former_section else [f.section]
    spelled = []
    for name in names:
        for key in dict.fromkeys([dashed(name), name.replace("-", "_")]):
            spelled += [f"--{key}", *(f"--{section}.{key}" for section in sections)]
    return list(dict.fromkeys(spelled))


def parse_flags(tokens: Sequence[str], where: str, preset_list: str) -> Flags:
    """Parse `--flag value`, `--flag=value`, `--bool`, `--no-bool`; later flags win."""
    p = parser("hfgpt", "", preset_list)
    p.where = where
    namespace, leftovers = p.parse_known_args(list(tokens))
    if leftovers:
        raise _leftover_error(leftovers[0], where)
    values = vars(namespace)
    return Flags(configs=[(name, where) for name in values.pop("configs", [])],
                 flagsfiles=values.pop("flagsfiles", []), values=values)


def read_flagsfile(name: str, where: str, preset_list: str) -> Flags:
    """One flag per line; `#` starts a comment (unless quoted); values may be quoted as in a shell."""
    path = Path(name).expanduser()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        reason = getattr(e, "strerror", None) or e
        raise HfGptError(f"--flagsfile {name} {where}: cannot read it ({reason}). "
                         "Check the path; relative paths start at the current directory.") from None
    merged = Flags()
    for number, line in enumerate(lines, start=1):
        line_where = f"in flags file {path}, line {number}"
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError as e:
            raise HfGptError(f"Cannot read the flag {line_where}: {e}; close the quote.") from None
        flags = parse_flags(tokens, line_where, preset_list)
        if flags.flagsfiles:
            raise HfGptError(f"--flagsfile {line_where}: a flags file cannot include another; "
                             "pass both with --flagsfile on the command line.")
        merged.values.update(flags.values)
        merged.configs += flags.configs
    return merged


def _leftover_error(token: str, where: str) -> HfGptError:
    """What argparse could not place: a word with no flag before it, or a flag that is not one of ours."""
    if not token.startswith("--") or token == "--":
        hint = " Flags start with two dashes." if token.startswith("-") else \
            " Every setting is a flag with its value, e.g. --max-steps 500; quote values with spaces."
        return HfGptError(f"Unexpected argument {token!r} {where}.{hint}")
    flag = token.partition("=")[0]
    section, _, key = flag[2:].replace("-", "_").rpartition(".")
    name = next((f.name for f in FIELDS.values() if key in (f.name, *(a.replace("-", "_") for a in f.rules.aliases))),
                None)
    if name and section in SECTIONS and section != FIELDS[name].section:
        return HfGptError(f"{flag} {where}: {dashed(name)} belongs to the {FIELDS[name].section} section; "
                          f"write --{FIELDS[name].section}.{dashed(name)} or just --{dashed(name)}.")
    return HfGptError(f"Unknown flag {flag} {where}.{suggest(dashed(key), _known_flags(bool(section)))} "
                      "`--help` lists every flag.")


def _known_flags(dotted: bool) -> dict[str, str]:
    """Spellings a mistyped flag is matched against (without the dashes) -> the flag to suggest."""
    known: dict[str, str] = {}
    for f in FIELDS.values():
        shown = f"--{f.section}.{dashed(f.name)}" if dotted else flag_of(f.name)
        for name in (f.name, *f.rules.aliases):
            known[dashed(name)] = shown
            if f.type is bool and not dotted:
                known[f"no-{dashed(name)}"] = f"--no-{dashed(f.name)}"
    if not dotted:
        known |= {flag[2:]: flag for flag in SOURCE_FLAGS}
    return known


def suggest(name: str, candidates: Sequence[str] | dict[str, str]) -> str:
    """A "did you mean" hint; a mapping is matched on its keys and shows its values."""
    shown = candidates if isinstance(candidates, dict) else {c: c for c in candidates}
    close = difflib.get_close_matches(name, list(shown), n=6, cutoff=0.7)
    picked = list(dict.fromkeys(shown[c] for c in close))[:3]
    return f" Did you mean {' or '.join(picked)}?" if picked else ""
