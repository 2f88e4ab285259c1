"""``zoo infer``: the posterior of a simulator's parameters for one or more observations.

Fits the chosen method (or loads a saved estimator), draws the posterior of every observation in one batched call,
writes ``posterior.nc`` (NetCDF4 with ArviZ groups) and plots, and prints a two-line summary per observation.
"""

from __future__ import annotations

import time
from pathlib import Path

import click
import numpy as np
import torch

import inference
import simulators
import zoo.estimators
from cli.errors import parse_options
from cli.observations import parse_theta, read_observations, simulated_test_case
from inference.infer import infer as run_infer


@click.command()
@click.option("--simulator", "-s", "name", help="Simulator name (see `zoo list`); not needed with --estimator.")
@click.option(
    "--method",
    "-m",
    default=None,
    help="Posterior method (see `zoo list`). Default: the shipped estimator for this simulator if there is one "
    "and no --budget/--option is given, else abc.",
)
@click.option("--retrain", is_flag=True, help="Train the default shipped estimator afresh instead of loading it.")
@click.option("--estimator", type=click.Path(path_type=Path), help="A saved estimator directory (zoo train) to use.")
@click.option("--observation", "obs_file", type=click.Path(path_type=Path), help="CSV / NPY / JSON observations.")
@click.option("--as-set", is_flag=True, help="Read all rows of a CSV --observation as one set (set-valued simulators).")
@click.option("--theta", help="Simulate a synthetic observation from these parameters, e.g. 0,0.3,-0.2,0.4.")
@click.option("--test-index", type=int, help="Use case K of the simulated test set (see --test-seed).")
@click.option("--test-seed", type=int, default=0, show_default=True, help="Seed of the simulated test set.")
@click.option("--n-samples", "-n", type=int, default=1000, show_default=True, help="Posterior draws per observation.")
@click.option("--n-resim", type=int, default=200, show_default=True, help="Draws per observation to re-simulate.")
@click.option("--budget", "-b", type=int, default=None, help="Simulation budget (default: the method's).")
@click.option("--option", "opts", multiple=True, metavar="KEY=VALUE", help="Method option, repeatable.")
@click.option("--sim-option", "sim_opts", multiple=True, metavar="KEY=VALUE", help="Simulator option, repeatable.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the run's generator.")
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output folder.")
@click.option("--overwrite", is_flag=True, help="Replace an existing posterior.nc in --out.")
@click.option("--no-plots", is_flag=True, help="Write posterior.nc only.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def infer(
    name,
    method,
    retrain,
    estimator,
    obs_file,
    as_set,
    theta,
    test_index,
    test_seed,
    n_samples,
    n_resim,
    budget,
    opts,
    sim_opts,
    seed,
    out,
    overwrite,
    no_plots,
    quiet,
) -> None:
    """Infer the posterior of a simulator's parameters given observations.

    Example: zoo infer --simulator arm --method abc --theta 0,0.3,-0.2,0.4 --out out/
    """
    sources = [
        s for s, v in (("--observation", obs_file), ("--theta", theta), ("--test-index", test_index)) if v is not None
    ]
    if len(sources) != 1:
        raise click.UsageError("give exactly one of --observation FILE, --theta VALUES, --test-index K")
    if as_set and obs_file is None:
        raise click.UsageError("--as-set applies to a CSV --observation file")
    if estimator is None and name is None:
        raise click.UsageError("give --simulator NAME (or --estimator DIR)")
    result_path = out / "posterior.nc"
    if result_path.exists() and not overwrite:
        raise FileExistsError(f"{result_path} already exists; pass --overwrite to replace it")
    generator = torch.Generator().manual_seed(seed)

    # Resolve everything that can fail on bad input before any work is done or anything written.
    if estimator is not None:
        est = inference.load(estimator)
        sim = est.simulator
        if name is not None and name != sim.name:
            raise ValueError(f"--simulator {name} does not match the estimator's simulator {sim.name}")
    else:
        sim = simulators.get(name, **parse_options(sim_opts))
        shipped = None
        if method is None and budget is None and not opts:
            shipped = zoo.estimators.default_for(sim.name, getattr(sim, "options", {}))
        if shipped is not None and not retrain:
            estimator = shipped.name
            est = inference.load(shipped.name)
            if not quiet:
                click.echo(
                    f"using the shipped estimator {shipped.name} (--retrain to train it afresh, --method M for another)"
                )
        elif shipped is not None:
            method, budget = shipped.method, shipped.budget
            try:  # the recorded options of the shipped estimator, so the retrained one matches its recipe
                options = inference.read_estimator(shipped.directory).options
            except (FileNotFoundError, ValueError):
                options = inference.make_options(method, None)
        else:
            if retrain:
                raise ValueError(
                    f"--retrain applies to a shipped estimator, and there is none for {sim.name} with these options "
                    "when --method/--budget/--option are given; drop --retrain"
                )
            method = method or "abc"
            options = inference.make_options(method, parse_options(opts))
    truth = None
    if obs_file is not None:
        x_o = read_observations(obs_file, sim, as_set=as_set)
    elif theta is not None:
        truth = parse_theta(theta, sim)
        x_o = sim.simulate(truth, generator=generator)
    else:
        truth, x_o = simulated_test_case(sim, test_index, seed=test_seed)

    t0 = time.perf_counter()
    if estimator is None:
        est = inference.fit(sim, method=method, budget=budget, options=options, generator=generator, progress=not quiet)
    result = run_infer(
        est,
        x_o,
        n_samples=n_samples,
        generator=generator,
        seed=seed,
        theta_true=truth,
        n_predictive=n_resim,
        fit_seconds=time.perf_counter() - t0,
    )
    if hasattr(est, "misspecification"):
        p = est.misspecification(x_o).p_value.reshape(-1)
        for i in (p < 0.01).nonzero().flatten().tolist():
            click.echo(
                f"warning: observation {i} looks unlike anything the simulator produces (misspecification p-value "
                f"{float(p[i]):.2g}); treat its posterior with suspicion",
                err=True,
            )
    result.save(result_path, overwrite=overwrite)
    written = [str(result_path)]
    if not no_plots:
        from inference import plots

        written += plots.save_figures(plots.result_figures(result, sim), out)
    click.echo(f"wrote {', '.join(written)}")
    _print_summary(result)


def _print_summary(result) -> None:
    s = result.summary()
    resim = result.sample_stats.get("resimulation_error")
    shown = min(result.n_observations, 5)
    for i in range(shown):
        head = f"observation {i}: " if result.n_observations > 1 else ""
        parts = [f"{p} {s['mean'][i, d]:.3g} ± {s['sd'][i, d]:.2g}" for d, p in enumerate(result.param_names)]
        click.echo(f"{head}posterior mean ± sd: " + ", ".join(parts))
        if resim is not None:
            r = resim[:, :, i]
            r = r[np.isfinite(r)]  # drop draws that were not re-simulated (NaN)
            click.echo(
                f"{' ' * len(head)}re-simulation error ||s(theta) - x_o||: mean {r.mean():.4g}, median "
                f"{np.median(r):.4g}"
            )
        if "eps" in result.sample_stats:
            click.echo(
                f"{' ' * len(head)}ABC tolerance (largest accepted standardized distance): "
                f"{float(result.sample_stats['eps'][i]):.3g}"
            )
    if result.n_observations > shown:
        click.echo(f"... and {result.n_observations - shown} more observations in the file")
