"""``zoo fiber`` defaults work on the shipped pair (samples below the nearest neighbour without --gamma), and a run
whose samples are no closer to the fiber than the reference data says so in one warning line."""

from __future__ import annotations

from click.testing import CliRunner

from inference.results import read_fibers
from zoo_cli.main import main

BASE = ["fiber", "--subject", "color-mnist-ae", "--prior", "color-mnist-ddpm", "--input", "7", "-n", "1"]


def test_the_default_gamma_beats_the_nearest_neighbour(tmp_path):
    r = CliRunner().invoke(main, [*BASE, "--out", str(tmp_path / "d")])
    assert r.exit_code == 0, r.output
    res = read_fibers(tmp_path / "d" / "fibers.nc")
    assert float(res.fiber_loss.mean()) < float(res.baselines["nearest_neighbour"].mean())
    assert "warning" not in r.output


def test_a_run_above_the_nearest_neighbour_warns(tmp_path):
    r = CliRunner().invoke(main, [*BASE, "--gamma", "0", "--steps", "10", "--out", str(tmp_path / "w")])
    assert r.exit_code == 0, r.output
    warnings = [ln for ln in r.output.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and "nearest neighbour" in warnings[0] and "--gamma" in warnings[0]
