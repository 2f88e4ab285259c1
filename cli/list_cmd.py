"""``zoo list``: what zoo has — simulators (with their options)."""

from __future__ import annotations

import click

import simulators


@click.command("list")
def list_cmd() -> None:
    """List the registered simulators and their options."""
    click.echo("simulators:")
    for name in simulators.names():
        opts = ", ".join(f"{k}={v!r}" for k, v in simulators.options(name).items())
        click.echo(f"  {name:<18} {opts}")
