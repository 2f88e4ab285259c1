"""``zoo infer``: the posterior of a simulator's parameters for one or more observations.

Parses, resolves the estimator (:func:`inference.estimator_for`: saved, shipped, retrained or fitted), reads the
observations, runs :func:`inference.infer`, writes ``posterior.nc`` (NetCDF4 with ArviZ groups) and plots, and
prints a two-line summary per observation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import torch

import inference
from zoo_cli.observations import check_sources, read_sources
from zoo_cli.options import SEED, check_out, count, estimator_choice, fit_options, source_options

OUTPUTS = ("posterior.nc", "corner*.png", "arm*.png")  # what zoo infer may write (inference.plots.result_figures)


@click.command()
@source_options("to use")
@click.option("--retrain", is_flag=True, help="Train the default shipped estimator afresh instead of loading it.")
@click.option(
    "--observation", "obs_file", type=click.Path(path_type=Path), help="Observations: CSV / NPY / JSON / HDF5 / NPZ."
)
@click.option("--as-set", is_flag=True, help="Read all rows of a CSV --observation as one set (set-valued simulators).")
@click.option("--x-key", default="x", show_default=True, help="Dataset / array of an HDF5 / NPZ --observation.")
@click.option(
    "--truth", type=click.Path(path_type=Path), help="True parameters of the observations (HDF5/NPZ/NPY/CSV)."
)
@click.option("--theta-key", default="theta", show_default=True, help="Dataset / array of an HDF5 / NPZ --truth.")
@click.option("--theta", help="Simulate a synthetic observation from these parameters, e.g. 0,0.3,-0.2,0.4.")
@click.option("--test-index", type=count(0), help="Use case K of the simulated test set (the case K of zoo diagnose).")
@click.option("--test-seed", type=SEED, default=0, show_default=True, help="Seed of the simulated test set.")
@click.option(
    "--n-samples", "-n", type=count(), default=1000, show_default=True, help="Posterior draws per observation."
)
@click.option("--n-resim", type=count(0), default=200, show_default=True, help="Draws per observation to re-simulate.")
@fit_options
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output folder.")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs (posterior.nc, figures) in --out.")
@click.option("--no-plots", is_flag=True, help="Write posterior.nc only.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def infer(**o: Any) -> None:
    """Infer the posterior of a simulator's parameters given observations.

    Example: zoo infer --simulator arm --method abc --theta 0,0.3,-0.2,0.4 --out out/
    """
    check_sources(o)
    result_path = o["out"] / "posterior.nc"
    check_out(o["out"], OUTPUTS[: 1 if o["no_plots"] else None], o["overwrite"])
    generator = torch.Generator().manual_seed(o["seed"])
    # resolves and checks everything that can fail on bad input before any work; a fit waits until infer needs it
    choice = estimator_choice(o, generator)
    sim = choice.simulator
    x_o, theta, truth = read_sources(o, sim)
    if choice.source == "shipped" and not o["quiet"]:
        click.echo(choice.describe())
    result = inference.infer(
        choice,
        x_o,
        theta=theta,
        test_index=o["test_index"],
        test_seed=o["test_seed"],
        n_samples=o["n_samples"],
        generator=generator,
        seed=o["seed"],
        n_predictive=o["n_resim"],
        theta_true=truth,
    )
    for line in result.warnings():
        click.echo(line, err=True)
    written = [str(result.save(result_path, overwrite=o["overwrite"]))]
    if not o["no_plots"]:
        from inference import plots

        written += plots.save_figures(plots.result_figures(result, sim), o["out"])
    click.echo(f"wrote {', '.join(written)}")
    for line in result.describe():
        click.echo(line)
