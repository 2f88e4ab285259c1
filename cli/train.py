"""``zoo train``: train once, reuse many times.

``zoo train --simulator NAME --method M --out DIR`` fits a posterior estimator (:func:`inference.estimator_for`) and
saves it (``zoo infer --estimator DIR`` reuses it); the subcommands ``zoo train prior`` / ``zoo train subject`` train
zoo models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import torch

from zoo_cli.options import count, estimator_choice, fit_options, read_table_option
from zoo_cli.train_models import prior, subject


@click.group(invoke_without_command=True)
@click.option(
    "--simulator",
    "-s",
    "name",
    help="Simulator: a name (zoo list), package.module:factory or path/file.py:factory.",
)
@click.option("--method", "-m", help="Posterior method (see `zoo list`).")
@click.option(
    "--simulations",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Train on this table (HDF5 from zoo simulate, NPZ or CSV) instead of simulating; --simulator optional.",
)
@click.option("--theta-key", default=None, help="Parameters in --simulations: dataset / array, or CSV columns a,b,c.")
@click.option("--x-key", default=None, help="Observations in --simulations: dataset / array, or CSV columns.")
@fit_options
@click.option("--out", "-o", type=click.Path(path_type=Path), help="Estimator directory to write.")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option(
    "--nproc",
    type=count(maximum=256),
    default=1,
    show_default=True,
    help="Train data-parallel in N processes on this machine (torch.distributed, gloo; see docs/scale.md).",
)
@click.pass_context
def train(ctx: click.Context, **o: Any) -> None:
    """Train a posterior estimator (or, with a subcommand, a zoo model).

    Example: zoo train --simulator arm --method inn --out arm-inn/
    """
    if ctx.invoked_subcommand is not None:
        return
    name, method, out = o["name"], o["method"], o["out"]
    needed = (("--simulator or --simulations", name or o["simulations"]), ("--method", method), ("--out", out))
    missing = [flag for flag, v in needed if v is None]
    if missing:
        raise click.UsageError(f"missing {', '.join(missing)}; e.g. zoo train --simulator arm --method inn --out DIR")
    if (out.is_symlink() or out.exists() and (not out.is_dir() or any(out.iterdir()))) and not o["overwrite"]:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    # everything that can fail on bad input fails here, before any process starts or any training
    estimator_choice(o, torch.Generator().manual_seed(o["seed"]), simulations=read_table_option(o))
    if o["nproc"] > 1:
        from zoo import distributed

        distributed.launch(o["nproc"], fit_and_save, o)
    else:
        fit_and_save(o)


def fit_and_save(o: dict[str, Any]) -> None:
    """Fit and save (rank 0 saves and reports when several processes train together)."""
    from zoo import distributed

    distributed.from_environment()  # under torchrun: join its group
    lead = distributed.rank() == 0
    opts = {**o, "quiet": o["quiet"] or not lead}
    choice = estimator_choice(opts, torch.Generator().manual_seed(o["seed"]), simulations=read_table_option(o))
    estimator = choice.estimator
    if not lead:
        return
    path = estimator.save(o["out"], overwrite=o["overwrite"])
    what = o["name"] or f"the {estimator.budget} simulations of {o['simulations']}"
    ranks = f" on {distributed.size()} processes" if distributed.size() > 1 else ""
    click.echo(
        f"trained {o['method']} on {what}{ranks} in {choice.fit_seconds:.1f} s; wrote {path} "
        f"(use: zoo infer --estimator {path})"
    )


train.add_command(prior)
train.add_command(subject)
