"""``zoo list``: what zoo has — simulators (with their options), posterior methods, fiber methods and shipped
estimators; ``--models``: the shipped models (priors and subjects)."""

from __future__ import annotations

import click

import inference
import inference.fibers
import simulators
import zoo
import zoo.estimators


@click.command("list")
@click.option("--models", is_flag=True, help="List the shipped models (priors and subjects) instead.")
def list_cmd(models: bool) -> None:
    """List the registered simulators, posterior methods, fiber methods and shipped estimators (or, with --models,
    the shipped models)."""
    if models:
        click.echo(f"{'model':<22} {'role':<8} {'parameters':>10} {'size':>8}  trained on / what it is")
        for m in zoo.models():
            click.echo(
                f"{m['name']:<22} {m['role']:<8} {m['parameters']:>10,} {m['size_bytes'] / 1e6:>6.2f}MB  "
                f"{m['trained_on']}: {m['description']}"
            )
        return
    click.echo("simulators:")
    for name in simulators.names():
        opts = ", ".join(f"{k}={v!r}" for k, v in simulators.options(name).items())
        click.echo(f"  {name:<18} {opts}")
    click.echo("methods:")
    for name in inference.methods():
        click.echo(f"  {name}")
    click.echo("fiber methods:")
    for name in inference.fibers.fiber_methods():
        click.echo(f"  {name:<18} {inference.fibers.fiber_method_spec(name).description}")
    click.echo("shipped estimators (the default of zoo infer --simulator NAME):")
    for name in zoo.estimators.names():
        e = zoo.estimators.get(name)
        click.echo(f"  {name:<22} {e.simulator} ({e.method}, {e.budget} simulations): {e.description}")
