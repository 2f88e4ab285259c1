"""``zoo list``: what zoo has — simulators (with their options) and posterior methods."""

from __future__ import annotations

import click

import inference
import simulators


@click.command("list")
def list_cmd() -> None:
    """List the registered simulators and posterior methods."""
    click.echo("simulators:")
    for name in simulators.names():
        opts = ", ".join(f"{k}={v!r}" for k, v in simulators.options(name).items())
        click.echo(f"  {name:<18} {opts}")
    click.echo("methods:")
    for name in inference.methods():
        click.echo(f"  {name}")
