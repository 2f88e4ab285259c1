"""`zoo --help`, `zoo --version` and `zoo list` start without importing torch or the library (well under 1 s).

The listing comes from `cli/catalog.json` and the help lines from `zoo_cli.main.COMMANDS`; both are checked against
the live registries and commands here, so they cannot drift.
"""

import importlib
import subprocess
import sys

from click.testing import CliRunner

from zoo_cli import catalog
from zoo_cli.main import COMMANDS, main


def test_catalog_matches_the_registries():
    assert catalog.load() == catalog.build(), "catalog.json is stale: run python -m zoo_cli.catalog"


def test_short_help_matches_each_command():
    for name, (module, attribute, short) in COMMANDS.items():
        command = getattr(importlib.import_module(module), attribute)
        assert command.get_short_help_str(limit=72) == short, name


def test_help_version_and_list_import_no_torch():
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom zoo_cli.main import main\n"
        "for args in (['--help'], ['--version'], ['list']):\n"
        "    r = CliRunner().invoke(main, args); assert r.exit_code == 0, r.output\n"
        "print(sorted(m for m in ('torch', 'inference', 'simulators', 'zoo') if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


def test_list_shows_everything_registered():
    out = CliRunner().invoke(main, ["list"]).output
    for name in (*catalog.build()["simulators"], *catalog.build()["methods"], "ndtm", "arm-cinn"):
        assert name in out
