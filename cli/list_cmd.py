"""``zoo list``: what zoo has — simulators (with their options), posterior methods, fiber methods and shipped
estimators (from :mod:`zoo_cli.catalog`, without importing torch); ``--models``: the shipped models."""

from __future__ import annotations

from pathlib import Path

import click

from zoo_cli import catalog


@click.command("list")
@click.option("--models", is_flag=True, help="List the shipped models (priors and subjects) instead.")
@click.argument("directories", nargs=-1, type=click.Path(exists=True, file_okay=False))
def list_cmd(models: bool, directories: tuple[str, ...]) -> None:
    """List simulators, posterior methods, fiber methods and shipped estimators (--models: shipped models).

    With --models, DIRECTORIES are your own saved models (zoo.save output) to list alongside the shipped ones."""
    if directories and not models:
        raise click.UsageError("model directories are listed with --models: zoo list --models DIR ...")
    if models:
        import zoo
        from zoo.registry import info

        try:
            own = [info(Path(d)) for d in directories]
        except ValueError as e:
            raise click.UsageError(str(e)) from None
        click.echo(f"{'model':<22} {'role':<8} {'parameters':>10} {'size':>8}  trained on / what it is")
        for m in [*zoo.models(), *own]:
            click.echo(
                f"{m['name']:<22} {m['role']:<8} {m['parameters']:>10,} {m['size_bytes'] / 1e6:>6.2f}MB  "
                f"{m['trained_on']}: {m['description'] or m['kind']}"
            )
        return
    c = catalog.load()
    click.echo("simulators:")
    for name, opts in c["simulators"].items():
        click.echo(f"  {name:<18} {', '.join(f'{k}={v}' for k, v in opts.items())}")
    for name in catalog.plugins():
        click.echo(f"  {name:<18} (installed plugin)")
    click.echo("  (or your own: --simulator package.module:factory or path/file.py:factory; docs/own-simulator.md)")
    click.echo("methods:")
    for name in c["methods"]:
        click.echo(f"  {name}")
    click.echo("fiber methods:")
    for name, description in c["fiber_methods"].items():
        click.echo(f"  {name:<18} {description}")
    click.echo("OOD scores (zoo ood --method NAME):")
    for name, description in c.get("ood_scores", {}).items():
        click.echo(f"  {name:<18} {description}")
    click.echo("shipped estimators (the default of zoo infer --simulator NAME):")
    for name, e in c["estimators"].items():
        click.echo(f"  {name:<22} {e['simulator']} ({e['method']}, {e['budget']} simulations): {e['description']}")
