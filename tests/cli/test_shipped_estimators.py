"""Every shipped estimator runs `zoo infer --simulator NAME` and `zoo diagnose --estimator NAME` with finite numbers
(the tissue one included: its re-simulation falls back to the table's Monte Carlo for posterior draws)."""

import numpy as np
import pytest
from click.testing import CliRunner

import zoo.estimators
from inference.results import read_calibration, read_posterior
from zoo_cli.main import main


@pytest.mark.parametrize("name", zoo.estimators.names())
def test_shipped_estimator_infers_and_diagnoses(name, tmp_path):
    entry = zoo.estimators.get(name)
    source = ["-s", entry.simulator] if entry.default else ["--estimator", name]  # the default, or by name
    r = CliRunner().invoke(
        main, ["infer", *source, "--test-index", "0", "-n", "200", "--n-resim", "5", "--out", str(tmp_path / "i"),
               "--no-plots", "-q"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    res = read_posterior(tmp_path / "i" / "posterior.nc")
    assert res.method == entry.method and np.isfinite(res.draws).all()
    assert np.isfinite(res.sample_stats["resimulation_error"]).any()
    r = CliRunner().invoke(
        main, ["diagnose", "--estimator", name, "--n-test", "20", "-n", "100", "--n-resim", "2", "--out",
               str(tmp_path / "d"), "-q"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    report = read_calibration(tmp_path / "d" / "calibration.nc")
    assert np.isfinite(report.error) and np.isfinite(report.resimulation_error_mean) and np.isfinite(report.tarp_error)
