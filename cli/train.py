"""``zoo train``: train once, reuse many times.

``zoo train --simulator NAME --method M --out DIR`` fits a posterior estimator (:func:`inference.estimator_for`) and
saves it (``zoo infer --estimator DIR`` reuses it); the subcommands ``zoo train prior`` / ``zoo train subject`` train
zoo models.
"""

from __future__ import annotations

from pathlib import Path

import click
import torch

import inference
from zoo_cli.options import fit_options, parse_options
from zoo_cli.train_models import prior, subject


@click.group(invoke_without_command=True)
@click.option("--simulator", "-s", "name", help="Simulator name (see `zoo list`).")
@click.option("--method", "-m", help="Posterior method (see `zoo list`).")
@fit_options
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), help="Estimator directory to write.")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.pass_context
def train(ctx, name, method, budget, seed, opts, sim_opts, out, overwrite, quiet) -> None:
    """Train a posterior estimator (or, with a subcommand, a zoo model).

    Example: zoo train --simulator arm --method inn --out arm-inn/
    """
    if ctx.invoked_subcommand is not None:
        return
    missing = [flag for flag, v in (("--simulator", name), ("--method", method), ("--out", out)) if v is None]
    if missing:
        raise click.UsageError(f"missing {', '.join(missing)}; e.g. zoo train --simulator arm --method inn --out DIR")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    choice = inference.estimator_for(
        name,
        method=method,
        budget=budget,
        options=parse_options(opts),
        simulator_options=parse_options(sim_opts),
        generator=torch.Generator().manual_seed(seed),
        progress=not quiet,
    )
    path = choice.estimator.save(out, overwrite=overwrite)
    click.echo(
        f"trained {method} on {name} in {choice.fit_seconds:.1f} s; wrote {path} (use: zoo infer --estimator {path})"
    )


train.add_command(prior)
train.add_command(subject)
