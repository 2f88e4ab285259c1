"""The shape of the house (issue 14): small modules, thin command-line commands, layers that import downwards only.

Counted on the source text: a module is at most 400 lines (STYLE.md: a file past ~400 lines is usually two files);
a command function of the CLI is at most 60 lines (parse, one or two library calls, write, print).
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("simulators", "zoo", "inference", "cli")
MODULES = sorted(p for top in PACKAGES for p in (ROOT / top).rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_over_400_lines(path):
    n = len(path.read_text().splitlines())
    assert n <= 400, f"{path.relative_to(ROOT)} has {n} lines; split it into modules of one concept each"


def _commands(tree: ast.Module):
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and any(
            isinstance(d, ast.Call) and getattr(d.func, "attr", getattr(d.func, "id", "")) in ("command", "group")
            for d in node.decorator_list
        ):
            yield node


def test_cli_command_functions_are_short():
    long = []
    for path in sorted((ROOT / "cli").glob("*.py")):
        for fn in _commands(ast.parse(path.read_text())):
            n = fn.end_lineno - fn.lineno + 1
            if n > 60:
                long.append(f"{path.name}:{fn.name} ({n} lines)")
    assert not long, f"CLI commands over 60 lines (move the pipeline into the library): {long}"


# the layers of ARCHITECTURE.md: which of zoo's packages each may import
ALLOWED = {
    "simulators": {"simulators"},
    "zoo": {"zoo", "simulators"},
    "inference": {"inference", "zoo", "simulators"},
    "cli": {"zoo_cli", "inference", "zoo", "simulators"},
}


@pytest.mark.parametrize("top", PACKAGES)
def test_imports_point_down_only(top):
    ours = {"simulators", "zoo", "inference", "zoo_cli", "cli"}
    bad = []
    for path in sorted((ROOT / top).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                head = name.split(".")[0]
                if head in ours and head not in ALLOWED[top]:
                    bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, bad


ROOMS = [("matplotlib", "inference/plots"), ("xarray", "inference/results/netcdf.py")]
ROOMS += [("arviz", "inference/results/netcdf.py")]


@pytest.mark.parametrize("library, allowed", ROOMS)
def test_third_party_rooms(library, allowed):
    users = []
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n.split(".")[0] == library for n in names):
                users.append(str(path.relative_to(ROOT)))
    assert all(u.startswith(allowed) for u in users), f"{library} imported outside {allowed}: {sorted(set(users))}"
