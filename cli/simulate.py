"""``zoo simulate``: draw parameters from a simulator's prior and simulate observations into an HDF5 table."""

from __future__ import annotations

from pathlib import Path

import click

import simulators
from zoo_cli.options import SEED, count, parse_options, threads_option
from zoo_cli.scale import cluster_options, dask_client


@click.command()
@click.option(
    "--simulator",
    "-s",
    "name",
    required=True,
    help="Simulator: a name (zoo list), package.module:factory or path/file.py:factory.",
)
@click.option("-n", "n", type=count(), default=10_000, show_default=True, help="Number of simulations.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Base seed (each chunk derives its own).")
@click.option("--out", "-o", type=click.Path(path_type=Path), required=True, help="Output HDF5 file.")
@click.option("--sim-option", "sim_opts", multiple=True, metavar="KEY=VALUE", help="Simulator option, repeatable.")
@click.option("--option", "opts", multiple=True, hidden=True, help="Not an option of zoo simulate (no method).")
@click.option("--chunk-size", type=count(), default=None, help="Rows per chunk (bounds memory; default per simulator).")
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its last complete chunk.")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@click.option("--device", default="cpu", show_default=True, help="Torch device to simulate on.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@cluster_options
@threads_option
def simulate(name, n, seed, out, sim_opts, opts, chunk_size, resume, overwrite, device, quiet, workers, scheduler):
    """Simulate N (theta, x) pairs from the prior into an HDF5 table.

    Example: zoo simulate --simulator arm -n 100000 --seed 0 --out arm.h5 --sim-option noise_std=0.01

    With --workers N (or --scheduler ADDRESS) the chunks are simulated on a Dask cluster; the table is the same.
    """
    if opts:  # --option means a method's option in every command; zoo simulate has no method
        raise click.UsageError(
            "zoo simulate takes simulator options as --sim-option KEY=VALUE (--option is a method's)"
        )
    sim = simulators.get(name, **parse_options(sim_opts))
    finished = resume and not overwrite and Path(out).exists()
    with dask_client(workers, scheduler) as client:
        path = simulators.simulate_table(
            sim,
            n,
            out,
            seed=seed,
            chunk_size=chunk_size,
            resume=resume,
            overwrite=overwrite,
            progress=not quiet,
            device=device,
            client=client,
        )
    if finished:
        click.echo(f"{path} is already complete ({n} simulations of {name} with these settings); nothing to resume")
        return
    click.echo(f"wrote {n} simulations of {name} (theta {len(sim.param_names)}-D, x {tuple(sim.obs_shape)}) to {path}")
