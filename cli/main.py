"""The ``zoo`` command: one click group; each subcommand lives in its own module and calls one library function."""

from __future__ import annotations

import click

import zoo
from zoo_cli.check import check
from zoo_cli.diagnose import diagnose
from zoo_cli.errors import ZooClickGroup
from zoo_cli.fiber import fiber
from zoo_cli.infer import infer
from zoo_cli.list_cmd import list_cmd
from zoo_cli.simulate import simulate
from zoo_cli.train import train


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
