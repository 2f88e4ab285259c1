"""Files written by an earlier release still load, and give the same numbers (issue 19: format fixtures).

``tests/fixtures/v1/`` was written by ``tests/fixtures/make_v1.py`` with format version 1 of every file kind: estimator
directories (cINN, INN), a zoo model directory (flow prior), ``posterior.nc``, ``calibration.nc`` and a simulation
table. A later release that changes a format adds ``v2`` next to it and keeps this test passing for ``v1``. Draws are
compared at float32 round-off (same ops, same order: bitwise on one machine).
"""

from __future__ import annotations

import json
from pathlib import Path

import arviz as az
import numpy as np
import pytest
import torch

import inference
import simulators
import zoo
from inference.results import read_calibration, read_posterior

V1 = Path(__file__).resolve().parent / "fixtures" / "v1"
EXPECTED = np.load(V1 / "expected.npz")


@pytest.mark.parametrize("method", ["cinn", "inn"])
def test_v1_estimators_load_and_draw_the_same(method):
    path = V1 / f"estimator-{method}"
    header = json.loads((path / "estimator.json").read_text())
    assert (header["format"], header["version"], header["method"]) == ("zoo.estimator", 1, method)
    est = inference.load(path)
    draws = est.posterior(torch.as_tensor(EXPECTED["x"])).sample(16, generator=torch.Generator().manual_seed(11))
    np.testing.assert_allclose(draws.numpy(), EXPECTED[f"{method}_draws"], rtol=1e-5, atol=1e-5)


def test_v1_model_directory_loads_with_the_same_density():
    assert json.loads((V1 / "model-flow" / "zoo.json").read_text())["format_version"] == 1
    prior = zoo.load(V1 / "model-flow", role="prior")
    log_prob = prior.log_prob(torch.as_tensor(EXPECTED["flow_points"])).detach().numpy()
    np.testing.assert_allclose(log_prob, EXPECTED["flow_log_prob"], rtol=1e-5, atol=1e-5)


def test_v1_result_files_read_with_zoo_and_arviz():
    post = read_posterior(V1 / "posterior.nc")
    assert post.method == "cinn" and post.draws.shape == (1, 20, 2, 4)  # chain, draw, observation, parameter
    assert len(az.from_netcdf(V1 / "posterior.nc").posterior.data_vars) == 4
    cal = read_calibration(V1 / "calibration.nc")
    assert cal.sbc_ranks.shape == (10, 4) and np.isfinite(cal.error)


def test_v1_simulation_table_reads():
    theta, x, attrs = simulators.read_table(V1 / "table.h5")
    assert theta.shape == (64, 4) and x.shape == (64, 2) and attrs["complete"] and attrs["seed"] == 3
    again = simulators.get("arm").simulate(theta.double()).float()
    torch.testing.assert_close(again, x, atol=1e-5, rtol=1e-5)  # the rows are the simulator's


def test_weights_holding_nan_are_refused(tmp_path):
    """A broken file is an error when it is loaded, not NaN draws or a silently wrong model later."""
    import shutil

    from safetensors.torch import load_file, save_file

    for src, name, load in [
        ("estimator-cinn", "weights.safetensors", inference.load),
        ("model-flow", "model.safetensors", lambda p: zoo.load(p, role="prior")),
    ]:
        path = tmp_path / src
        shutil.copytree(V1 / src, path)
        tensors = load_file(str(path / name))
        key = sorted(k for k, v in tensors.items() if v.is_floating_point() and v.numel() > 1)[0]
        tensors[key][0] = float("nan")
        save_file(tensors, str(path / name))
        with pytest.raises(ValueError, match="NaN in"):
            load(path)
