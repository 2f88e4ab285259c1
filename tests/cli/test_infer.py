"""`zoo infer` through click's CliRunner: the done-when command, every observation source, and the error paths."""

import json
import warnings

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

import inference
import simulators
from inference.results import read_posterior
from zoo_cli.main import main

FAST = ["--budget", "20000", "--n-samples", "200", "-q"]


@pytest.fixture
def runner():
    return CliRunner()


def test_infer_arm_theta_writes_readable_result_and_plots(runner, tmp_path):
    import arviz as az

    out = tmp_path / "out"
    r = runner.invoke(
        main, ["infer", "--simulator", "arm", "--method", "abc", "--theta", "0,0.3,-0.2,0.4", "--out", str(out), *FAST]
    )
    assert r.exit_code == 0, r.output
    assert {"posterior.nc", "corner.png", "arm.png"} <= {p.name for p in out.iterdir()}
    assert str(out / "posterior.nc") in r.output
    assert "posterior mean ± sd: rail" in r.output and "re-simulation error" in r.output
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = az.from_netcdf(out / "posterior.nc")
    assert idata.posterior["rail"].shape == (1, 200, 1)
    with h5py.File(out / "posterior.nc", "r") as f:
        np.testing.assert_allclose(f["constant_data/theta_true"][()], [[0, 0.3, -0.2, 0.4]], rtol=1e-6)
    # the synthetic observation is the simulation of the given parameters
    res = read_posterior(out / "posterior.nc")
    arm = simulators.get("arm")
    np.testing.assert_allclose(res.observation, arm.simulate(torch.tensor([[0, 0.3, -0.2, 0.4]])).numpy(), rtol=1e-6)
    # refuses to overwrite; --overwrite replaces
    r = runner.invoke(main, ["infer", "-s", "arm", "--theta", "0,0.3,-0.2,0.4", "--out", str(out), *FAST])
    assert r.exit_code == 2 and "already exists" in r.output
    r = runner.invoke(
        main, ["infer", "-s", "arm", "--theta", "0,0.3,-0.2,0.4", "--out", str(out), "--overwrite", "--no-plots", *FAST]
    )
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("fmt", ["csv", "npy", "json"])
def test_several_observations_in_one_file(runner, tmp_path, fmt):
    x = np.array([[0.1, 1.5], [0.3, 1.2], [-0.2, 1.7]])
    path = tmp_path / f"obs.{fmt}"
    if fmt == "csv":
        path.write_text("y1,y2\n" + "\n".join(",".join(str(v) for v in row) for row in x) + "\n")
    elif fmt == "npy":
        np.save(path, x)
    else:
        path.write_text(json.dumps({"x": x.tolist()}))
    out = tmp_path / "out"
    r = runner.invoke(main, ["infer", "-s", "arm", "--observation", str(path), "--out", str(out), "--no-plots", *FAST])
    assert r.exit_code == 0, r.output
    res = read_posterior(out / "posterior.nc")
    assert res.draws.shape == (1, 200, 3, 4) and res.theta_true is None
    np.testing.assert_allclose(res.observation, x, rtol=1e-6)
    assert "observation 2:" in r.output


def test_test_index_is_deterministic_and_stores_truth(runner, tmp_path):
    outs = []
    for k in ("a", "b"):
        out = tmp_path / k
        r = runner.invoke(
            main, ["infer", "-s", "gaussian-mixture", "--test-index", "7", "--out", str(out), "--no-plots", *FAST]
        )
        assert r.exit_code == 0, r.output
        outs.append(read_posterior(out / "posterior.nc"))
    np.testing.assert_array_equal(outs[0].theta_true, outs[1].theta_true)
    np.testing.assert_array_equal(outs[0].observation, outs[1].observation)


def test_saved_estimator_is_reused(runner, tmp_path):
    est = inference.fit(simulators.get("arm"), method="abc", budget=20_000, progress=False)
    est.save(tmp_path / "est")
    out = tmp_path / "out"
    r = runner.invoke(
        main,
        [
            "infer",
            "--estimator",
            str(tmp_path / "est"),
            "--theta",
            "0,0.3,-0.2,0.4",
            "--out",
            str(out),
            "--no-plots",
            "-n",
            "100",
            "-q",
        ],
    )
    assert r.exit_code == 0, r.output
    assert read_posterior(out / "posterior.nc").budget == 20_000


@pytest.mark.parametrize(
    "content, message",
    [
        ("1,2,3\n", "row 0 has 3 values; expected 2 values (y1, y2)"),
        ("0.1,nan\n", "is not finite"),
        ("0.1,inf\n", "is not finite"),
        ("0.1,abc\n", "not a number"),
        ("", "no observation rows"),
    ],
)
def test_bad_csv_exits_2_and_writes_nothing(runner, tmp_path, content, message):
    path = tmp_path / "obs.csv"
    path.write_text(content)
    out = tmp_path / "out"
    r = runner.invoke(main, ["infer", "-s", "arm", "--observation", str(path), "--out", str(out), *FAST])
    assert r.exit_code == 2, r.output
    assert message in r.output
    assert not out.exists()


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("bad.npy", b"\x93NUMPY garbage", "not a NumPy .npy array"),
        ("bad.json", b"{oops", "not valid JSON"),
        ("bad.txt", b"1,2", "unknown observation file type"),
        ("shape.json", json.dumps([[1, 2, 3]]).encode(), "expected 2 values"),
    ],
)
def test_unreadable_files_exit_2(runner, tmp_path, name, data, message):
    path = tmp_path / name
    path.write_bytes(data)
    out = tmp_path / "out"
    r = runner.invoke(main, ["infer", "-s", "arm", "--observation", str(path), "--out", str(out), *FAST])
    assert r.exit_code == 2 and message in r.output
    assert not out.exists()


def test_wrong_npy_shape_and_missing_file(runner, tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((2, 3)))
    r = runner.invoke(main, ["infer", "-s", "arm", "--observation", str(path), "--out", str(tmp_path / "o"), *FAST])
    assert r.exit_code == 2 and "has shape (2, 3); expected 2 values" in r.output
    r = runner.invoke(
        main, ["infer", "-s", "arm", "--observation", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o"), *FAST]
    )
    assert r.exit_code == 2 and "does not exist" in r.output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--theta", "1,2"], "needs 4 comma-separated values"),
        (["--theta", "0,0,0,x"], "not a number"),
        (["--theta", "0,0,0,nan"], "not finite"),
        ([], "exactly one of"),
        (["--theta", "0,0,0,0", "--test-index", "1"], "exactly one of"),
        (["--theta", "0,0,0,0", "--method", "nope"], "unknown method 'nope'"),
        (["--theta", "0,0,0,0", "--option", "epsilon=1"], "unknown option 'epsilon'"),
    ],
)
def test_bad_arguments_exit_2(runner, tmp_path, args, message):
    out = tmp_path / "out"
    r = runner.invoke(main, ["infer", "-s", "arm", "--out", str(out), *args, *FAST])
    assert r.exit_code == 2 and message in r.output, r.output
    assert not out.exists()


def test_abc_accepting_nothing_says_so(runner, tmp_path):
    path = tmp_path / "far.json"
    path.write_text("[5, 5]")
    out = tmp_path / "out"
    r = runner.invoke(main, ["infer", "-s", "arm", "--observation", str(path), "--out", str(out), *FAST])
    assert r.exit_code == 2
    assert "ABC found no simulation near observation 0" in r.output and "increase --budget or eps" in r.output
    assert not (out / "posterior.nc").exists()
    r = runner.invoke(
        main,
        [
            "infer",
            "-s",
            "arm",
            "--theta",
            "0,0.3,-0.2,0.4",
            "--option",
            "mode=threshold",
            "--option",
            "eps=0.0001",
            "--out",
            str(out),
            *FAST,
        ],
    )
    assert r.exit_code == 2 and "ABC accepted only" in r.output and "increase --budget or eps" in r.output
