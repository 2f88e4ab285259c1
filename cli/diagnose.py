"""``zoo diagnose``: calibration of a posterior method over simulated test cases, or a summary of a result file.

``zoo diagnose --simulator NAME --method M --n-test 200 --out DIR`` runs simulation-based calibration
(:func:`inference.evaluation.calibration.calibrate`) and writes ``calibration.nc``, ``calibration.md`` (the table) and
the plots; ``zoo diagnose posterior.nc`` prints a summary of an existing result file. Test case K is the observation
``zoo infer --test-index K`` uses (same ``--test-seed``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import torch

from zoo_cli.options import SEED, check_out, count, estimator_choice, fit_options, source_options
from zoo_cli.subject_diag import run as run_subject
from zoo_cli.subject_diag import subject_options

# what a calibration run writes (inference.plots.calibration_figures)
OUTPUTS = ("calibration.nc", "calibration.md", "calibration.png", "sbc.png", "report.png")


@click.command()
@click.argument("result", required=False, type=click.Path(dir_okay=False, path_type=Path))
@source_options("to test")
@click.option("--n-test", type=count(2), default=200, show_default=True, help="Simulated test cases.")
@click.option("--test-seed", type=SEED, default=0, show_default=True, help="Seed of the simulated test set.")
@click.option("--n-samples", "-n", type=count(), default=1000, show_default=True, help="Posterior draws per test case.")
@click.option("--n-map", type=count(0), default=0, show_default=True, help="Test cases with a mean-shift MAP estimate.")
@click.option("--n-resim", type=count(0), default=100, show_default=True, help="Draws re-simulated per case.")
@click.option("--c2st", type=count(0), default=0, show_default=True, help="Cases scored by C2ST vs exact.")
@fit_options
@click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path), help="Output folder (calibration run).")
@click.option("--overwrite", is_flag=True, help="Replace existing files in --out.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@subject_options
def diagnose(result: Path | None, **o: Any) -> None:
    """Check calibration of a method on simulated test cases, or summarize a result file.

    Examples: zoo diagnose --simulator gaussian-mixture --method abc --n-test 200 --out diag/
              zoo diagnose out/posterior.nc
              zoo diagnose --subject digits-classifier --out clf/
    """
    if o["subject"] is not None:
        return run_subject(o)
    if result is not None:
        if o["name"] or o["estimator"]:
            raise click.UsageError("give either a result file or --simulator/--estimator, not both")
        from inference.results import CalibrationReport, read_result

        got = read_result(result)
        r = got.result if isinstance(got, CalibrationReport) else got
        click.echo(f"{result}: {r.headline()}")
        for line in r.describe(truth=True):
            click.echo(line)
        if isinstance(got, CalibrationReport):
            click.echo(got.table())
        return
    if o["estimator"] is None and o["name"] is None:
        raise click.UsageError("give a result file to summarize, or --simulator NAME (or --estimator DIR) to calibrate")
    if o["out"] is None:
        raise click.UsageError("a calibration run needs --out DIR")
    nc, md = o["out"] / "calibration.nc", o["out"] / "calibration.md"
    check_out(o["out"], OUTPUTS, o["overwrite"])
    if o["n_test"] < 2 or o["n_samples"] < 1:
        raise ValueError(f"--n-test must be >= 2 and --n-samples >= 1, got {o['n_test']} and {o['n_samples']}")
    generator = torch.Generator().manual_seed(o["seed"])
    choice = estimator_choice(o, generator)
    from inference.evaluation.calibration import calibrate

    est = choice.estimator
    report = calibrate(
        est,
        n_test=o["n_test"],
        n_samples=o["n_samples"],
        generator=generator,
        seed=o["seed"],
        test_seed=o["test_seed"],
        n_map=o["n_map"],
        n_resim=o["n_resim"],
        c2st=o["c2st"],
        fit_seconds=choice.fit_seconds,
    )
    from inference import plots

    written = [str(report.save(nc, overwrite=o["overwrite"])), str(report.save_table(md, overwrite=True))]
    written += plots.save_figures(plots.calibration_figures(report), o["out"])
    click.echo(f"wrote {', '.join(written)}")
    click.echo(report.table())
    click.echo(report.headline())
