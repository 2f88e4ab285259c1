"""``zoo diagnose``: calibration of a posterior method over simulated test cases, or a summary of a result file.

``zoo diagnose --simulator NAME --method M --n-test 200 --out DIR`` runs simulation-based calibration
(:func:`inference.evaluation.calibration.calibrate`) and writes ``calibration.nc``, ``calibration.md`` (the table) and
the plots; ``zoo diagnose posterior.nc`` prints a summary of an existing result file.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import click
import numpy as np
import torch

import inference
import simulators
from cli.errors import parse_options


@click.command()
@click.argument("result", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--simulator", "-s", "name", help="Simulator name (see `zoo list`); not needed with --estimator.")
@click.option("--method", "-m", default="abc", show_default=True, help="Posterior method (see `zoo list`).")
@click.option("--estimator", type=click.Path(path_type=Path), help="A saved estimator directory (zoo train) to test.")
@click.option("--n-test", type=int, default=200, show_default=True, help="Simulated test cases.")
@click.option("--n-samples", "-n", type=int, default=1000, show_default=True, help="Posterior draws per test case.")
@click.option("--n-map", type=int, default=0, show_default=True, help="Test cases with a mean-shift MAP estimate.")
@click.option("--budget", "-b", type=int, default=None, help="Simulation budget (default: the method's).")
@click.option("--option", "opts", multiple=True, metavar="KEY=VALUE", help="Method option, repeatable.")
@click.option("--sim-option", "sim_opts", multiple=True, metavar="KEY=VALUE", help="Simulator option, repeatable.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the run's generator.")
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), help="Output folder (calibration run).")
@click.option("--overwrite", is_flag=True, help="Replace existing files in --out.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def diagnose(
    result, name, method, estimator, n_test, n_samples, n_map, budget, opts, sim_opts, seed, out, overwrite, quiet
) -> None:
    """Check calibration of a method on simulated test cases, or summarize a result file.

    Examples: zoo diagnose --simulator gaussian-mixture --method abc --n-test 200 --out diag/
              zoo diagnose out/posterior.nc
    """
    if result is not None:
        if name or estimator:
            raise click.UsageError("give either a result file or --simulator/--estimator, not both")
        _summarize(result)
        return
    if estimator is None and name is None:
        raise click.UsageError("give a result file to summarize, or --simulator NAME (or --estimator DIR) to calibrate")
    if out is None:
        raise click.UsageError("a calibration run needs --out DIR")
    nc = out / "calibration.nc"
    if nc.exists() and not overwrite:
        raise FileExistsError(f"{nc} already exists; pass --overwrite to replace it")
    if n_test < 2 or n_samples < 1:
        raise ValueError(f"--n-test must be >= 2 and --n-samples >= 1, got {n_test} and {n_samples}")
    generator = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    if estimator is not None:
        est = inference.load(estimator)
    else:
        sim = simulators.get(name, **parse_options(sim_opts))
        options = inference.make_options(method, parse_options(opts))
        est = inference.fit(sim, method=method, budget=budget, options=options, generator=generator, progress=not quiet)
    fit_seconds = time.perf_counter() - t0

    from inference.evaluation.calibration import calibrate

    report = calibrate(
        est, n_test=n_test, n_samples=n_samples, generator=generator, seed=seed, n_map=n_map, fit_seconds=fit_seconds
    )
    report.save(nc, overwrite=overwrite)
    table = report.table()
    md = out / "calibration.md"
    tmp = out / ".calibration.md.partial"
    tmp.write_text(f"# Calibration: {est.simulator.name} / {est.method}\n\n```\n{table}\n```\n")
    os.replace(tmp, md)
    from inference import plots

    written = [str(nc), str(md), *plots.save_figures(plots.calibration_figures(report), out)]
    click.echo(f"wrote {', '.join(written)}")
    click.echo(table)
    click.echo(f"calibration error {100 * report.error:.2f}% over {report.result.n_observations} test cases")


def _summarize(path: Path) -> None:
    from inference.results import CalibrationReport, read_result

    got = read_result(path)
    report = got if isinstance(got, CalibrationReport) else None
    r = report.result if report is not None else got
    click.echo(
        f"{path}: {r.simulator} {r.simulator_options}, method {r.method} (budget {r.budget}, seed {r.seed}), "
        f"{r.n_observations} observation(s) x {r.draws.shape[0]} chain(s) x {r.draws.shape[1]} draws, "
        f"{r.wall_time_s:.1f} s"
    )
    s = r.summary()
    resim = r.sample_stats.get("resimulation_error")
    for i in range(min(r.n_observations, 5)):
        line = ", ".join(f"{p} {s['mean'][i, d]:.3g} ± {s['sd'][i, d]:.2g}" for d, p in enumerate(r.param_names))
        click.echo(f"observation {i}: posterior mean ± sd: {line}")
        if r.theta_true is not None:
            draws = r.flat(i)
            lo, hi = np.quantile(draws, [0.05, 0.95], axis=0)
            inside = [p for d, p in enumerate(r.param_names) if lo[d] < r.theta_true[i, d] < hi[d]]
            click.echo(f"  truth inside the central 90% interval for {len(inside)}/{r.dim} parameters")
        if resim is not None:
            e = resim[:, :, i]
            e = e[np.isfinite(e)]
            click.echo(f"  re-simulation error: mean {e.mean():.4g}, median {np.median(e):.4g}")
        for k in ("r_hat", "ess", "eps", "divergences"):
            if k in r.sample_stats:
                v = np.asarray(r.sample_stats[k])[i]
                click.echo(f"  {k}: {np.array2string(np.atleast_1d(v), precision=3)}")
    if r.n_observations > 5:
        click.echo(f"... and {r.n_observations - 5} more observations")
    if report is not None:
        click.echo(report.table())
