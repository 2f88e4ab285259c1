"""The ``zoo`` command: one click group; each subcommand lives in its own module and calls one library function."""

from __future__ import annotations

import click

import zoo
from cli.check import check
from cli.diagnose import diagnose
from cli.errors import ZooClickGroup
from cli.fiber import fiber
from cli.infer import infer
from cli.list_cmd import list_cmd
from cli.simulate import simulate
from cli.train import train


@click.group(cls=ZooClickGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(zoo.__version__, prog_name="zoo")
def main() -> None:
    """zoo: simulators, pretrained priors and subjects, calibrated posteriors and fiber sampling."""


main.add_command(list_cmd)
main.add_command(simulate)
main.add_command(train)
main.add_command(infer)
main.add_command(diagnose)
main.add_command(check)
main.add_command(fiber)
