"""`zoo infer` with the shipped estimators: the default when no method or budget is given, and its warning."""

import numpy as np
import pytest
from click.testing import CliRunner

from inference.results import read_posterior
from zoo_cli.main import main


@pytest.fixture
def runner():
    return CliRunner()  # click >= 8.2: r.output holds stdout and stderr together


def test_shipped_distilled_cinn_is_the_default_for_the_arm(runner, tmp_path):
    out = tmp_path / "o"
    r = runner.invoke(main, ["infer", "-s", "arm", "--theta", "0,0.3,-0.2,0.4", "--out", str(out), "--no-plots"])
    assert r.exit_code == 0, r.output
    assert "shipped estimator arm-distilled" in r.output
    res = read_posterior(out / "posterior.nc")
    assert res.method == "cinn"
    # the shipped estimator is accurate (docs/amortized.md: mean re-simulation error 0.0058 over 1000 test cases);
    # 0.05 is ~9x that, a loose bound that still fails for an untrained or wrong estimator (prior: ~1)
    assert float(np.nanmean(res.sample_stats["resimulation_error"])) < 0.05


@pytest.mark.parametrize(
    "extra, method",
    [(["--method", "abc", "--budget", "20000"], "abc"), (["--budget", "20000"], "abc")],
)
def test_an_explicit_method_or_budget_opts_out(runner, tmp_path, extra, method):
    out = tmp_path / "o"
    args = ["infer", "-s", "arm", "--theta", "0,0.3,-0.2,0.4", "--out", str(out), "--no-plots", "-q", *extra]
    r = runner.invoke(main, args)
    assert r.exit_code == 0, r.output
    assert read_posterior(out / "posterior.nc").method == method


def test_no_shipped_estimator_for_other_simulator_options(runner, tmp_path):
    out = tmp_path / "o"
    args = ["infer", "-s", "arm", "--sim-option", "noise_std=0.1", "--theta", "0,0.3,-0.2,0.4", "--out", str(out)]
    r = runner.invoke(main, [*args, "--no-plots", "-q", "-n", "200"])
    assert r.exit_code == 0, r.output
    assert read_posterior(out / "posterior.nc").method == "abc"


def test_an_impossible_observation_is_flagged(runner, tmp_path):
    """(3, -1) lies far outside the arm's reachable set under its prior: the misspecification score must flag it."""
    obs = tmp_path / "far.csv"
    obs.write_text("3.0,-1.0\n0.1,1.5\n")
    r = runner.invoke(main, ["infer", "-s", "arm", "--observation", str(obs), "--out", str(tmp_path / "o"), "-q"])
    assert r.exit_code == 0, r.output
    assert "warning: observation 0 looks unlike anything" in r.output
    assert "warning: observation 1" not in r.output


def test_retrain_without_a_shipped_default_is_a_one_line_error(runner, tmp_path):
    out = tmp_path / "o"
    args = ["infer", "-s", "arm", "--theta", "0,0.3,-0.2,0.4", "--out", str(out), "--method", "abc", "--retrain"]
    r = runner.invoke(main, args)
    assert r.exit_code == 2 and "--retrain applies to a shipped estimator" in r.output
    assert not out.exists()


def test_posterior_file_records_the_misspecification_score(runner, tmp_path):
    """The score the warning is based on is stored per observation in posterior.nc (sample_stats)."""
    import torch

    import inference

    obs = tmp_path / "obs.csv"
    obs.write_text("3.0,-1.0\n0.1,1.5\n")
    out = tmp_path / "o"
    r = runner.invoke(main, ["infer", "-s", "arm", "--observation", str(obs), "--out", str(out), "-q", "--no-plots"])
    assert r.exit_code == 0, r.output
    res = read_posterior(out / "posterior.nc")
    p, d = res.sample_stats["misspecification_pvalue"], res.sample_stats["misspecification_distance"]
    assert p.shape == d.shape == (2,)
    expected = inference.load("arm-distilled").misspecification(torch.tensor([[3.0, -1.0], [0.1, 1.5]]))
    np.testing.assert_allclose(p, expected.p_value.numpy(), rtol=1e-6)
    np.testing.assert_allclose(d, expected.distance.numpy(), rtol=1e-5)
    assert p[0] < 0.01 < p[1]  # the impossible observation is flagged, the reachable one is not
