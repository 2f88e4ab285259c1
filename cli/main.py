"""The ``zoo`` command: one click group; each subcommand lives in its own module, imported only when it runs.

``zoo --help``, ``zoo --version`` and ``zoo list`` import neither torch nor the library (they start in well under a
second); a command's module, and with it the library, is imported when that command is run or asked for ``--help``.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version

import click

from zoo_cli.errors import ZooClickGroup

# name: (module, attribute, the one-line help `zoo --help` shows; a test checks it against the command's own)
COMMANDS = {
    "list": ("zoo_cli.list_cmd", "list_cmd", "List simulators, posterior methods, fiber methods and shipped..."),
    "simulate": ("zoo_cli.simulate", "simulate", "Simulate N (theta, x) pairs from the prior into an HDF5 table."),
    "train": ("zoo_cli.train", "train", "Train a posterior estimator (or, with a subcommand, a zoo model)."),
    "infer": ("zoo_cli.infer", "infer", "Infer the posterior of a simulator's parameters given observations."),
    "diagnose": (
        "zoo_cli.diagnose",
        "diagnose",
        "Check calibration of a method on simulated test cases, or summarize a...",
    ),
    "check": ("zoo_cli.check", "check", "Check the shipped models' quality; exit code 1 if a check fails."),
    "fiber": ("zoo_cli.fiber", "fiber", "Sample the fiber {x~ : phi(x~) = phi(x)} of a subject through an input."),
    "ood": ("zoo_cli.ood", "ood", "Score inputs under a prior: are they from the prior's world?"),
}


class LazyGroup(ZooClickGroup):
    """A click group whose subcommands are imported on use (the short help comes from :data:`COMMANDS`)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attribute, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, _, short) in COMMANDS.items()])


def _version() -> str:
    try:
        return version("zoo")
    except PackageNotFoundError:  # running from a source tree without installation
        return "0.0.0+source"


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_version(), prog_name="zoo")
def main() -> None:
    """zoo: simulators, pretrained priors and subjects, calibrated posteriors and fiber sampling."""
