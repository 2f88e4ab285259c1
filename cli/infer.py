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
from inference.batch import PARTITION
from inference.results import read_posterior
from zoo_cli.observations import check_sources, read_sources
from zoo_cli.options import SEED, check_out, count, estimator_choice, fit_options, source_options
from zoo_cli.scale import cluster_options, dask_client

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
@click.option(
    "--n-resim",
    type=count(0),
    default=None,
    help="Draws per observation to re-simulate (default 200; 0 in partitioned runs, where it costs a simulation per "
    "draw).",
)
@click.option(
    "--partition",
    type=count(),
    default=None,
    help=f"Observations per partition: draw partition by partition into one compressed file, resumable (default "
    f"{PARTITION} when there are more observations, or with --workers / --scheduler / --resume).",
)
@click.option("--resume", is_flag=True, help="Continue an interrupted partitioned run from its finished partitions.")
@cluster_options
@fit_options
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output folder.")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs (posterior.nc, figures) in --out.")
@click.option("--no-plots", is_flag=True, help="Write posterior.nc only.")
@click.option(
    "--ood-check",
    is_flag=True,
    help="Before inferring, test whether the observations look like the simulator's (a calibrated p-value); warn.",
)
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
    if o["ood_check"]:
        ood_check(choice, x_o, o["seed"])
    batch = o["partition"] or o["workers"] or o["scheduler"] or o["resume"]
    if batch or (x_o is not None and len(x_o) > PARTITION):
        return _partitioned(o, choice, x_o, truth)
    o["n_resim"] = 200 if o["n_resim"] is None else o["n_resim"]
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


def ood_check(choice: Any, x_o: torch.Tensor | None, seed: int, alpha: float = 0.01) -> None:
    """``--ood-check``: the cheapest calibrated check of the observations, before any inference; warns on stderr.

    With learned summaries (cinn) the summary-space Mahalanobis distance to held-out simulations, else the
    Mahalanobis distance of the raw observation to prior-predictive simulations
    (:func:`inference.posterior.misspecification.prior_predictive_check`).
    """
    if x_o is None:
        click.echo("ood-check: the observations are simulated from the model here; nothing to check", err=True)
        return
    est = choice.estimator
    if hasattr(est, "misspecification"):
        score, how = est.misspecification(x_o), "summary-space distance to held-out simulations"
    else:
        from inference.posterior.misspecification import prior_predictive_check

        g = torch.Generator().manual_seed(seed + 7919)  # its own stream: the posterior draws do not change
        score, how = prior_predictive_check(choice.simulator, x_o, generator=g), "distance to prior-predictive draws"
    p = score.p_value.reshape(-1)
    bad = torch.nonzero(p < alpha).reshape(-1).tolist()
    n = len(p)
    line = f"ood-check: {len(bad)} of {n} observations atypical at p < {alpha:g} ({how}; ~{alpha * n:.2g} by chance)"
    if bad:
        line += "; first: " + ", ".join(f"#{i} (p={float(p[i]):.3g})" for i in bad[:5])
        line += ". Their posteriors extrapolate beyond the training simulations: check units, preprocessing, model."
    click.echo(line, err=True)


def _partitioned(o: dict[str, Any], choice: Any, x_o: torch.Tensor | None, truth: torch.Tensor | None) -> None:
    """Many observations: :func:`inference.batch.infer_batch`, in this process or on a Dask cluster."""
    from inference.batch import infer_batch, misspecified

    if x_o is None:
        raise click.UsageError(
            "a partitioned run (--partition / --workers / --scheduler / --resume) reads --observation"
        )
    ref = {"loaded": o["estimator"], "shipped": choice.name}.get(choice.source)
    if ref is None and (o["workers"] or o["scheduler"]):
        raise click.UsageError(
            "workers load the estimator from its folder: train it first (zoo train), --estimator DIR"
        )
    path = o["out"] / "posterior.nc"
    with dask_client(o["workers"], o["scheduler"]) as client:
        infer_batch(
            ref if ref is not None else choice.estimator,
            x_o,
            path,
            n_samples=o["n_samples"],
            seed=o["seed"],
            theta_true=truth,
            n_predictive=o["n_resim"] or 0,
            partition=o["partition"] or PARTITION,
            client=client,
            trust_code=o["trust_code"],
            resume=o["resume"],
            overwrite=o["overwrite"],
            progress=not o["quiet"],
        )
    first = read_posterior(path, observations=slice(0, 4))  # the summary and figures show the first observations
    written = [str(path)]
    if not o["no_plots"]:
        from inference import plots

        written += plots.save_figures(plots.result_figures(first, choice.simulator), o["out"])
    n, flagged = misspecified(path)
    for note in first.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"wrote {', '.join(written)} ({n} observations)")
    if flagged:
        click.echo(
            f"note: {flagged} of {n} observations have a misspecification p-value below 0.01 (about {n // 100} "
            "expected by chance); read them with inference.results.read_posterior(path, observations=...)",
            err=True,
        )
    for line in first.describe()[:12]:
        click.echo(line)
    if n > first.n_observations:
        click.echo(f"... and {n - first.n_observations} more observations in {path}")
