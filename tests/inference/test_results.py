"""The result file: written atomically, read back exactly, and readable by arviz, xarray and h5py."""

import json
import warnings

import h5py
import numpy as np
import pytest
import torch
import xarray as xr

import inference
import simulators
from inference.evaluation.calibration import calibrate
from inference.infer import infer
from inference.results import (
    PosteriorSamples,
    read_calibration,
    read_posterior,
    read_result,
    to_inference_data,
)


@pytest.fixture(scope="module")
def arm_result():
    arm = simulators.get("arm")
    g = torch.Generator().manual_seed(0)
    est = inference.fit(arm, method="abc", budget=20_000, generator=g, progress=False)
    theta = torch.tensor([[0.0, 0.3, -0.2, 0.4], [0.1, -0.2, 0.3, 0.0], [0.0, 0.1, 0.1, 0.1]])
    return infer(
        est, arm.simulate(theta), n_samples=50, generator=g, seed=0, theta_true=theta, n_prior=30, n_predictive=20
    )


def test_infer_shapes_and_provenance(arm_result):
    r = arm_result
    assert r.draws.shape == (1, 50, 3, 4) and r.observation.shape == (3, 2)
    assert r.prior_draws.shape == (30, 4) and r.predictive.shape == (1, 20, 3, 2)
    assert r.sample_stats["distance"].shape == (1, 50, 3) and r.sample_stats["eps"].shape == (3,)
    resim = r.sample_stats["resimulation_error"]
    assert np.isfinite(resim[:, :20]).all() and np.isnan(resim[:, 20:]).all()
    # the re-simulation error of the stored predictive draws is exactly what was recorded
    np.testing.assert_allclose(
        np.linalg.norm(r.predictive - r.observation, axis=-1), resim[:, :20], rtol=1e-5, atol=1e-6
    )
    assert r.method == "abc" and r.simulator == "arm" and r.budget == 20_000 and r.seed == 0
    assert r.simulator_options == {"variant": "thesis", "noise_std": 0.0}
    assert r.method_options["mode"] == "quantile"
    assert r.versions["torch"] == torch.__version__


def test_round_trip_is_exact(arm_result, tmp_path):
    path = arm_result.save(tmp_path / "posterior.nc")
    back = read_posterior(path)
    for name in ("draws", "observation", "theta_true", "prior_draws", "predictive"):
        np.testing.assert_array_equal(getattr(back, name), getattr(arm_result, name))
    assert set(back.sample_stats) == set(arm_result.sample_stats)
    for k, v in arm_result.sample_stats.items():
        np.testing.assert_array_equal(back.sample_stats[k], v)
    for name in (
        "param_names",
        "method",
        "simulator",
        "simulator_options",
        "method_options",
        "budget",
        "seed",
        "observation_names",
        "created",
        "versions",
    ):
        assert getattr(back, name) == getattr(arm_result, name), name
    assert isinstance(read_result(path), PosteriorSamples)


def test_file_opens_with_arviz_xarray_and_h5py(arm_result, tmp_path):
    import arviz as az

    path = arm_result.save(tmp_path / "posterior.nc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = az.from_netcdf(path)
    assert {"posterior", "prior", "observed_data", "posterior_predictive", "sample_stats"} <= set(idata.groups())
    assert idata.posterior["rail"].dims == ("chain", "draw", "observation")
    np.testing.assert_array_equal(idata.posterior["angle2"].values, arm_result.draws[..., 2])
    assert list(idata.observed_data["x_dim"].values) == ["y1", "y2"]
    summary = az.summary(idata, kind="stats")
    assert "rail[0]" in summary.index
    tree = xr.open_datatree(path, engine="h5netcdf")
    assert tree.attrs["method"] == "abc" and json.loads(tree.attrs["param_names"])[0] == "rail"
    np.testing.assert_array_equal(tree["constant_data"]["theta_true"].values, arm_result.theta_true)
    tree.close()
    with h5py.File(path, "r") as f:
        assert {"posterior", "prior", "observed_data", "posterior_predictive", "sample_stats"} <= set(f)
        np.testing.assert_array_equal(f["posterior/rail"][()], arm_result.draws[..., 0])
        assert f.attrs["simulator"] in ("arm", b"arm")
    idata2 = to_inference_data(arm_result)
    np.testing.assert_array_equal(idata2.posterior["rail"].values, idata.posterior["rail"].values)


def test_atomic_write_and_overwrite(arm_result, tmp_path):
    path = tmp_path / "sub" / "posterior.nc"
    arm_result.save(path)
    with pytest.raises(FileExistsError, match="--overwrite"):
        arm_result.save(path)
    arm_result.save(path, overwrite=True)
    assert sorted(p.name for p in path.parent.iterdir()) == ["posterior.nc"]  # no temporary files left


def test_failed_write_leaves_nothing(tmp_path):
    bad = PosteriorSamples(
        draws=np.zeros((1, 2, 1, 2)),
        param_names=("a", "b"),
        observation=np.zeros((1, 3)),
        method="abc",
        simulator="x",
        sample_stats={"bad": np.zeros((1, 1, 1, 1))},
    )
    with pytest.raises(ValueError, match="sample_stats"):
        bad.save(tmp_path / "p.nc")
    assert list(tmp_path.iterdir()) == []


def test_validation_and_foreign_files(tmp_path):
    with pytest.raises(ValueError, match="draws must have shape"):
        PosteriorSamples(
            draws=np.zeros((2, 3)), param_names=("a",), observation=np.zeros((1, 1)), method="m", simulator="s"
        )
    with pytest.raises(FileNotFoundError):
        read_posterior(tmp_path / "missing.nc")
    junk = tmp_path / "junk.nc"
    junk.write_bytes(b"not a netcdf file")
    with pytest.raises(ValueError, match="not a readable NetCDF4"):
        read_posterior(junk)
    other = tmp_path / "other.nc"
    xr.Dataset({"a": ("x", [1, 2])}).to_netcdf(other, engine="h5netcdf")
    with pytest.raises(ValueError, match="not a zoo posterior file"):
        read_posterior(other)


def test_calibration_report_round_trip(tmp_path):
    gm = simulators.get("gaussian-mixture")
    g = torch.Generator().manual_seed(3)
    est = inference.fit(gm, method="abc", budget=5000, generator=g, progress=False)
    rep = calibrate(est, n_test=20, n_samples=30, generator=g, n_map=2)
    assert rep.inlier.shape == (100, 2) and rep.sbc_ranks.shape == (20, 2) and np.isfinite(rep.rmse_map)
    path = rep.save(tmp_path / "calibration.nc")
    back = read_calibration(path)
    np.testing.assert_array_equal(back.inlier, rep.inlier)
    np.testing.assert_array_equal(back.sbc_ranks, rep.sbc_ranks)
    assert back.error == rep.error and back.rmse_map == rep.rmse_map and back.n_map == 2
    assert back.band == rep.band and back.tarp_error == rep.tarp_error and np.isfinite(back.band)
    np.testing.assert_array_equal(back.tarp_ecp, rep.tarp_ecp)
    np.testing.assert_array_equal(back.result.draws, rep.result.draws)
    assert isinstance(read_result(path), type(rep))
    assert "calib. err" in rep.table() and "RMSE MAP" in rep.table()
    without = calibrate(est, n_test=20, n_samples=30, generator=g)  # n_map=0: no MAP column, no column of NaN
    assert "RMSE MAP" not in without.table() and "nan" not in without.table()


def test_files_for_both_arviz_generations(arm_result, tmp_path):
    """arviz 0.x reads both kinds of file here; `.ci/run` reads the same files with arviz >= 1 in a Python 3.12
    environment (`.ci/arviz1_check.py`), from the folder $ZOO_RESULT_FILES this test fills when it is set."""
    import os
    import shutil

    import arviz as az

    gm = simulators.get("gaussian-mixture")
    est = inference.fit(gm, method="abc", budget=5000, generator=torch.Generator().manual_seed(3), progress=False)
    rep = calibrate(est, n_test=30, n_samples=40, generator=torch.Generator().manual_seed(4))
    paths = [arm_result.save(tmp_path / "posterior.nc"), rep.save(tmp_path / "calibration.nc")]
    for path in paths:
        idata = az.from_netcdf(path)
        assert {"posterior", "observed_data"} <= set(idata.groups())
    idata = az.from_netcdf(paths[1])
    pit = idata["prior_sbc"][gm.param_names[0]]
    assert pit.dims == ("chain", "draw") and pit.shape == (1, 30) and 0 < float(pit.min()) < float(pit.max()) < 1
    assert set(to_inference_data(rep).groups()) >= {"posterior", "prior_sbc", "calibration"}
    if os.environ.get("ZOO_RESULT_FILES"):
        target = os.environ["ZOO_RESULT_FILES"]
        os.makedirs(target, exist_ok=True)
        for path in paths:
            shutil.copy(path, os.path.join(target, path.name))
