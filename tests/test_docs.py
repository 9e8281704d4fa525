"""The README and the docs/ pages against the code they describe, so that they cannot drift from it unseen:

- every repository path they name exists: a backticked or linked path under one of the repository's own
  folders (hfgpt/, tests/, recipes/, ...), in prose or in a code block; placeholders (`<run>`, `*`) are no path;
- every flag they show on a command line (`hfgpt COMMAND ...`, or `... recipes/train.py ...`, whose flags are
  train's) is one that `hfgpt COMMAND --help` lists, the help read from the real parsers in this process;
- the README's layout names every subpackage and top-level module of hfgpt/;
- docs/configuration.md names every section of the config, as `hfgpt train --help` groups the flags;
- the console line docs/runs.md shows is the one the console prints, every field included (an excerpt of one,
  its start).
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest
from helpers import REPO

from hfgpt.cli import COMMANDS, main
from hfgpt.config import SECTIONS
from hfgpt.runs.logbook import format_record

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
ROOTS = tuple(f"{path.name}/" for path in REPO.iterdir() if path.is_dir() and path.name not in (".git", "runs"))
PLACEHOLDER = re.compile(r"[<>*{}$]|\.\.\.")
FENCE = re.compile(r"^```(\w*)$")
SPAN = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")
FLAG = re.compile(r"(?<![\w-])--(\[no-\])?([A-Za-z](?:[\w.-]*\w)?)")  # not a sentence's full stop


def page_parts(page: Path) -> tuple[list[str], list[str], list[str]]:
    """(the lines of its shell code blocks, joined across trailing backslashes; its inline code spans; the prose
    outside code blocks). A python block is code, not command lines: it adds nothing."""
    shell, prose, fence = [], [], None
    for line in page.read_text(encoding="utf-8").splitlines():
        opened = FENCE.match(line.strip())
        if opened:
            fence = None if fence is not None else opened.group(1)
        elif fence is None:
            prose.append(line)
        elif fence != "python":
            if shell and shell[-1].endswith("\\"):
                shell[-1] = shell[-1][:-1] + " " + line.strip()
            else:
                shell.append(line)
    return shell, SPAN.findall("\n".join(prose)), prose


def named_paths(page: Path) -> set[Path]:
    """The repository paths a page names (a link's, from the page's folder)."""
    shell, spans, prose = page_parts(page)
    words = [word.strip("\"'(),;:") for text in [*shell, *spans] for word in text.split()]
    paths = {REPO / word for word in words if word.startswith(ROOTS) and not PLACEHOLDER.search(word)}
    return paths | {page.parent / target.partition("#")[0] for target in LINK.findall("\n".join(prose))
                    if "://" not in target and not target.startswith("#")}


def missing_paths(page: Path) -> list[str]:
    return sorted(str(path) for path in named_paths(page) if not path.exists())


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_path_a_page_names_exists(page):
    missing = missing_paths(page)
    assert not missing, f"{page.relative_to(REPO)} names paths that do not exist: {missing}"


def help_flags(command: str) -> set[str]:
    """Every flag that `hfgpt COMMAND --help` lists, `--[no-]x` as both spellings."""
    shown = io.StringIO()
    with contextlib.redirect_stdout(shown), contextlib.suppress(SystemExit):  # argparse's help exits
        main([command, "--help"])
    flags = set()
    for negated, name in FLAG.findall(shown.getvalue()):
        flags |= {f"--{name}", f"--no-{name}"} if negated else {f"--{name}"}
    return flags


HELP_FLAGS = {command: help_flags(command) for command in COMMANDS}


def command_lines(text: str) -> list[tuple[str, str]]:
    """(command, the rest of its line) for each `hfgpt COMMAND ...` or `... recipes/train.py ...` in `text`,
    comments dropped and `&&`, `||`, `;` and `|` ending a command."""
    found = []
    for segment in re.split(r"&&|\|\||;|\|", text.partition(" #")[0]):
        try:
            words = shlex.split(segment)
        except ValueError:  # an unclosed quote in prose
            words = segment.split()
        for index, word in enumerate(words):
            if word == "hfgpt" and index + 1 < len(words) and words[index + 1] in COMMANDS:
                found.append((words[index + 1], " ".join(words[index + 2:])))
                break
            if word.endswith("recipes/train.py"):
                found.append(("train", " ".join(words[index + 1:])))
                break
    return found


def shown_flags(page: Path) -> list[tuple[str, str]]:
    """(command, flag) for every flag a page shows on a command line."""
    shell, spans, _ = page_parts(page)
    return [(command, "--" + name) for text in [*shell, *spans] for command, rest in command_lines(text)
            for negated, name in FLAG.findall(rest)]


def unknown_flags(page: Path) -> list[str]:
    return sorted({f"hfgpt {command} {flag}" for command, flag in shown_flags(page) if flag not in HELP_FLAGS[command]})


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_flag_a_page_shows_is_one_its_command_lists(page):
    unknown = unknown_flags(page)
    assert not unknown, f"{page.relative_to(REPO)} shows flags that --help does not list: {unknown}"


DRIFTED = """See `hfgpt/launch_env.py`, `recipes/train.py` and [the data](data.md), not `runs/<run>/final`.

```bash
hfgpt train --data-path x.txt \\
  --no-such-flag 1  # --commented-out
accelerate launch --num_processes 2 recipes/train.py --seq 64 && hfgpt eval runs/x --json
```

```python
open("hfgpt/not_a_path.py")
```
Sample with `hfgpt generate runs/x --top-q 5`, or read `--anything` in prose.
"""


def test_the_checks_catch_a_path_and_flags_that_drifted(tmp_path):
    """The control: on a page that names one path that is gone and shows two flags that are not, these checks
    find exactly those (and a placeholder, a comment, a python block, prose and accelerate's flags are left)."""
    page = tmp_path / "page.md"
    page.write_text(DRIFTED)
    assert missing_paths(page) == sorted([str(REPO / "hfgpt" / "launch_env.py"), str(tmp_path / "data.md")])
    assert shown_flags(page) == [("train", "--data-path"), ("train", "--no-such-flag"), ("train", "--seq"),
                                 ("eval", "--json"), ("generate", "--top-q")]
    assert unknown_flags(page) == ["hfgpt generate --top-q", "hfgpt train --no-such-flag"]


def layout_section() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return text[text.index("## Layout"):].split("\n## ", 1)[0]


def test_the_readme_layout_names_every_subpackage_and_top_level_module():
    named = set(SPAN.findall(layout_section()))
    packages = {f"hfgpt/{path.parent.name}/" for path in (REPO / "hfgpt").glob("*/__init__.py")}
    missing = [package for package in sorted(packages) if not any(name.startswith(package) for name in named)]
    modules = [path.name for path in (REPO / "hfgpt").glob("*.py") if path.name != "__init__.py"]
    missing += [module for module in sorted(modules) if module not in named and f"hfgpt/{module}" not in named]
    assert not missing, f"the README's layout leaves out {missing}"


def test_the_configuration_page_names_every_section():
    text = " ".join((REPO / "docs" / "configuration.md").read_text(encoding="utf-8").split())
    sentence = re.search(r"One typed config with sections (.*?) \(", text)
    assert sentence and SPAN.findall(sentence.group(1)) == SECTIONS, "the sections, in --help's order"


FIELDS = {"loss": ("loss", 1.0), "ppl": ("ppl", 1.0), "acc": ("acc", 0.01), "lr": ("lr", 1.0),
          "gnorm": ("grad_norm", 1.0), "tok/s": ("tokens_per_s", 1.0), "ms/step": ("ms_per_step", 1.0),
          "mfu": ("mfu", 0.01)}


def console_record(line: str) -> tuple[dict, int]:
    """The record and max steps that a console line shows, read back from its fields."""
    step, split, *fields = line.split(" | ")
    done, total = step.removeprefix("step ").split("/")
    record = {"step": int(done), "split": split}
    for field in fields:
        first, second = field.split(" ", 1)
        label, number = (first, second) if first in FIELDS else (second, first)
        key, scale = FIELDS[label]
        record[key] = float(number.rstrip("%").replace(",", "")) * scale
    return record, int(total)


def test_the_console_line_the_docs_show_is_the_one_the_console_prints():
    """A line with the speed fields shows them all, mfu too; an excerpt (`step 10/10 | train | loss 3.3239`)
    shows the start of one."""
    shown = [span for page in PAGES for span in page_parts(page)[1] if re.match(r"step \d+/\d+ \| train \| ", span)]
    assert any(" tok/s | " in line for line in shown), "docs/runs.md shows a whole console line"
    for line in shown:
        record, total = console_record(line)
        full = {"ppl": 1.0, "acc": 0.0, "lr": 0.0, "grad_norm": 0.0, "tokens_per_s": 0.0, "ms_per_step": 0.0,
                "mfu": 0.5, **record}  # every field the console prints once it knows the device's peak
        printed = format_record(full, total)
        assert printed == line if " tok/s | " in line else printed.startswith(line + " | "), (line, printed)
