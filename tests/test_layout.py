"""The package's shape, as hfgpt/__init__.py and each subpackage's docstring describe it: imports only go down
the floors, no module imports itself round a circle, modules stay under 300 lines and functions under 50.

The model files are the exception to both size rules: one model, one file (a saved folder carries it whole for
`trust_remote_code`, as transformers' own 500-line model files are), a forward reads best in one piece, and the
config's `__init__` is the list of the model's fields (as transformers' own configs are)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from helpers import REPO

PACKAGE = REPO / "hfgpt"
# Lowest first; a module may import its own floor and those below.
FLOORS = [
    {"hfgpt.errors", "hfgpt.files", "hfgpt.console", "hfgpt.lifetime"},
    {"hfgpt.collectives"},
    {"hfgpt.models"},
    {"hfgpt.registration"},
    {"hfgpt.config"},
    {"hfgpt.data"},
    {"hfgpt.runs"},
    {"hfgpt.launch"},
    {"hfgpt.inference", "hfgpt.exporters", "hfgpt.tasks"},
    {"hfgpt.sharing"},
    {"hfgpt.training"},
    {"hfgpt.commands"},
    {"hfgpt.cli", "hfgpt"},
]
LONGEST_MODULE, LONGEST_FUNCTION = 300, 50


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def floor_of(module: str) -> int:
    for number, floor in enumerate(FLOORS):
        if any(module == room or module.startswith(room + ".") for room in floor if room != "hfgpt") or \
                module in floor:
            return number
    raise AssertionError(f"{module} is on no floor of this test: add it to FLOORS")


def imported(module: str) -> set[str]:
    """The hfgpt modules `module` imports, at its top or inside functions."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # from ..x import y, seen from `package`
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names = [f"{base}.{alias.name}" for alias in node.names]
            found |= {name if name in MODULES else base for name in names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {name for name in found if name in MODULES and name != module}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_only_go_down(module):
    upward = {other for other in imported(module) if floor_of(other) > floor_of(module)}
    assert not upward, f"{module} (floor {floor_of(module)}) imports {sorted(upward)} from above"


def test_no_module_imports_itself_round_a_circle():
    graph = {module: imported(module) for module in MODULES}
    state: dict[str, str] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for other in graph[module]:
            if state.get(other) == "open":
                raise AssertionError("circular imports: " + " -> ".join([*trail[trail.index(other):], other]))
            if other not in state:
                visit(other, [*trail, other])
        state[module] = "done"

    for module in graph:
        if module not in state:
            visit(module, [module])


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_and_functions_stay_small(module):
    text = MODULES[module].read_text()
    model = module.startswith("hfgpt.models.")
    assert model or len(text.splitlines()) < LONGEST_MODULE, f"{module} has {len(text.splitlines())} lines"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            exempt = model and (node.name == "forward" or (module.endswith(".configuration_hfgpt")
                                                            and node.name == "__init__"))
            assert exempt or length <= LONGEST_FUNCTION, f"{module}.{node.name} has {length} lines"


def test_every_subpackage_says_what_it_owns():
    for path in PACKAGE.rglob("__init__.py"):
        assert ast.get_docstring(ast.parse(path.read_text())), f"{path.relative_to(REPO)} has no docstring"
