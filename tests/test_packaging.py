"""Packaging: every package folder is installed, and the command-line package has zoo's own import name."""

import importlib
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_pyproject():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed, dirs = set(cfg["packages"]), cfg.get("package-dir", {})
    folders = {dirs.get(name, name.replace(".", "/")) for name in listed}
    found = set()
    for top in ("simulators", "zoo", "inference", "cli"):
        for init in (ROOT / top).rglob("__init__.py"):
            found.add(str(init.parent.relative_to(ROOT)))
    missing = found - folders
    assert not missing, f"package folders missing from pyproject's [tool.setuptools] packages: {sorted(missing)}"


def test_the_command_line_package_is_zoo_cli_not_cli():
    main = importlib.import_module("zoo_cli.main")
    assert main.main.name == "main"
    assert Path(main.__file__).parent.name == "cli"
