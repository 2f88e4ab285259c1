"""`zoo diagnose`: a calibration run over simulated test cases, and summaries of existing result files."""

import numpy as np
import pytest
from click.testing import CliRunner

from inference.results import read_calibration, read_posterior
from zoo_cli.main import main


@pytest.fixture
def runner():
    return CliRunner()


def test_diagnose_gaussian_mixture_abc_is_calibrated(runner, tmp_path):
    out = tmp_path / "diag"
    n_test = 100
    r = runner.invoke(
        main,
        [
            "diagnose",
            "--simulator",
            "gaussian-mixture",
            "--method",
            "abc",
            "--n-test",
            str(n_test),
            "--n-samples",
            "200",
            "--budget",
            "20000",
            "--out",
            str(out),
            "-q",
        ],
    )
    assert r.exit_code == 0, r.output
    assert {"calibration.nc", "calibration.md", "calibration.png", "sbc.png"} <= {p.name for p in out.iterdir()}
    rep = read_calibration(out / "calibration.nc")
    # ABC is exact on discrete observations: the error is Monte-Carlo noise, below 4 s.e. = 4 * 0.5 / sqrt(N)
    assert rep.error < 4 * 0.5 / n_test**0.5
    assert (rep.sbc_pvalues > 1e-4).all()
    assert f"calibration error {100 * rep.error:.2f}%" in r.output
    # summarize the file it wrote
    r = runner.invoke(main, ["diagnose", str(out / "calibration.nc")])
    assert r.exit_code == 0, r.output
    assert "method abc" in r.output and "calib. err" in r.output and "truth inside" in r.output
    # refuses to overwrite
    r = runner.invoke(main, ["diagnose", "-s", "gaussian-mixture", "--n-test", "10", "--out", str(out), "-q"])
    assert r.exit_code == 2 and "already exists" in r.output


def test_diagnose_summarizes_a_posterior_file(runner, tmp_path):
    out = tmp_path / "inf"
    r = runner.invoke(
        main,
        [
            "infer",
            "-s",
            "arm",
            "--theta",
            "0,0.3,-0.2,0.4",
            "--budget",
            "20000",
            "-n",
            "100",
            "--out",
            str(out),
            "--no-plots",
            "-q",
        ],
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["diagnose", str(out / "posterior.nc")])
    assert r.exit_code == 0, r.output
    assert "arm" in r.output and "posterior mean ± sd: rail" in r.output and "eps" in r.output


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "give a result file"),
        (["-s", "arm"], "needs --out"),
        (["missing.nc"], "does not exist"),
        (["-s", "arm", "--method", "nuts", "--out", "d"], "needs a simulator with a likelihood"),
        (["-s", "arm", "--n-test", "1", "--out", "d"], "--n-test"),
    ],
)
def test_diagnose_bad_input_exits_2(runner, tmp_path, args, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(main, ["diagnose", *args, "-q"] if args and not args[0].endswith(".nc") else ["diagnose", *args])
    assert r.exit_code == 2 and message in r.output, r.output
    assert not (tmp_path / "d").exists()


def test_infer_test_index_k_is_case_k_of_diagnose(tmp_path):
    """One test-case scheme: ``zoo infer --test-index K`` observes exactly test case K of ``zoo diagnose``."""
    runner = CliRunner()
    common = ["-s", "arm", "--method", "abc", "--budget", "2000", "-n", "50", "--test-seed", "7", "-q"]
    diag = runner.invoke(main, ["diagnose", *common, "--n-test", "6", "--out", str(tmp_path / "d")])
    assert diag.exit_code == 0, diag.output
    cases = read_calibration(tmp_path / "d" / "calibration.nc").result
    for k in (0, 4):
        out = tmp_path / f"i{k}"
        r = runner.invoke(main, ["infer", *common, "--test-index", str(k), "--out", str(out), "--no-plots"])
        assert r.exit_code == 0, r.output
        one = read_posterior(out / "posterior.nc")
        np.testing.assert_array_equal(one.observation[0], cases.observation[k])  # the same simulated case, bitwise
        np.testing.assert_array_equal(one.theta_true[0], cases.theta_true[k])


def test_diagnose_the_default_estimator_reports_everything(tmp_path):
    """Per-parameter calibration with its band, SBC, coverage (TARP, HPD), C2ST and a one-page report figure."""
    out = tmp_path / "d"
    args = ["diagnose", "-s", "arm", "--n-test", "500", "-n", "300", "--c2st", "2", "--out", str(out), "-q"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    for text in ("rail", "angle3", "band", "SBC p", "TARP max", "HPD coverage", "C2ST", "worst parameter"):
        assert text in r.output, text
    assert (out / "report.png").stat().st_size > 10_000
    report = read_calibration(out / "calibration.nc")
    assert report.result.method == "cinn" and report.c2st.shape == (2,) and report.tarp_ecp.shape == report.levels.shape
    assert 0.4 < report.c2st.mean() < 0.7  # the shipped estimator against exact draws (docs/amortized.md: 0.53-0.56)
    import xarray as xr

    with xr.open_datatree(out / "calibration.nc", engine="h5netcdf") as tree:  # arviz 1.x's SBC group: PIT values
        sbc = tree["prior_sbc"].to_dataset()
        assert set(sbc.data_vars) == {"rail", "angle1", "angle2", "angle3"} and sbc["rail"].dims == ("chain", "draw")
        assert 0 < float(sbc["rail"].min()) and float(sbc["rail"].max()) < 1
