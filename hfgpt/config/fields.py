"""How a setting is declared: its default and help, and the rules that belong to it.

Every field of the training config is declared with `setting(...)`, which keeps beside the field what the
rest of hfgpt needs to know about it: the help that `--help` shows, the values it accepts (`choices`,
`bounds`), what `hfgpt continue` may do with it (`on_continue`), other spellings of its flag (`aliases`),
for a field that moved, the section it was saved under before, so that old config files still load, for
a field added later, what runs saved before it did (`implied_before`), so that they continue unchanged, and for
a field that names files or folders of the machine, what a published model card may show of it (`local`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

# What `hfgpt continue` does when a launch gives the setting another value than the run was saved with:
# refuse it (it would change the run's math), allow it with a warning, allow it, or take it for this launch
# only (a switch such as --stop-at-step, never saved as part of the run).
OnContinue = Literal["refuse", "warn", "allow", "launch"]
# What a setting's value is on the machine that trains: comma-separated files (a published card names them by
# their names), a folder (which it leaves out), or a file or folder there or else a name that is no path (a Hub
# id, a tokenizer kind), shown as it is.
Local = Literal["", "files", "folder", "path-or-name"]


@dataclass(frozen=True)
class Bounds:
    """The numbers a setting accepts: from `low` to `high`, each end included unless marked open; `zero`
    names what 0 means for a setting where 0 is a switch and every other value must be positive."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    zero: str = ""
    reason: str = ""  # why `low` is the least value, for messages

    def allows(self, value: float) -> bool:
        if self.zero and value == 0:
            return True
        above = self.low is None or (value > self.low if self.low_open or self.zero else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def describe(self) -> str:
        if self.zero:
            most = f", at most {self.high:g}" if self.high is not None else ""
            return f"must be 0 ({self.zero}) or positive{most}"
        if self.high is None:
            if self.low == 0:
                return "must be positive" if self.low_open else "must not be negative"
            return f"must be at least {self.low:g}" + (f" ({self.reason})" if self.reason else "")
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"must be in {left}{self.low:g}, {self.high:g}{right}"


POSITIVE = Bounds(low=0, low_open=True)
NOT_NEGATIVE = Bounds(low=0)


def zero_or_positive(meaning: str) -> Bounds:
    """0 switches something off or derives it (`meaning` says which); any other value must be positive."""
    return Bounds(low=0, zero=meaning)


@dataclass(frozen=True)
class Rules:
    """What `setting` keeps in a field's metadata."""

    help: str
    choices: tuple[str, ...] = ()
    bounds: Bounds | None = None
    on_continue: OnContinue = "refuse"
    aliases: tuple[str, ...] = ()  # other flag spellings, dashed, without the leading --
    former_section: str = ""  # where the field lived in config files written before it moved
    # What a run saved before this setting existed did, when that differs from the default (so that such a run
    # continues as it would have); None: the default.
    implied_before: Any = None
    local: Local = ""

    def problem(self, value: Any) -> str:
        """Why `value` is not allowed (without the flag), or ""."""
        if self.choices and value not in self.choices:
            return f"must be {_one_of(self.choices)}"
        if self.bounds is not None and not self.bounds.allows(value):
            return self.bounds.describe()
        return ""


def setting(default: Any, help: str, *, choices: Sequence[str] = (), bounds: Bounds | None = None,
            on_continue: OnContinue = "refuse", aliases: Sequence[str] = (), former_section: str = "",
            implied_before: Any = None, local: Local = "") -> Any:
    """A dataclass field carrying its `Rules` (see the module docstring)."""
    rules = Rules(help, tuple(choices), bounds, on_continue, tuple(aliases), former_section, implied_before, local)
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"rules": rules})
    return field(default=default, metadata={"rules": rules})


def rules_of(dataclass_field: dataclasses.Field) -> Rules:
    return dataclass_field.metadata["rules"]


def _one_of(choices: Sequence[str]) -> str:
    return ", ".join(choices[:-1]) + f" or {choices[-1]}" if len(choices) > 1 else choices[0]
