"""Set-valued observations on the command line: `.npy` sets of any size in range, `--as-set` CSV, and the errors."""

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import inference
import simulators
from inference.results import read_posterior
from zoo_cli.main import main
from zoo_cli.observations import read_observations

SET_ARM = {"noise_std": 0.1, "n_obs": "2-12"}


@pytest.fixture(scope="module")
def set_estimator_dir(tmp_path_factory):
    """A tiny set-valued cINN (a few steps: these tests check plumbing and shapes, not posterior quality)."""
    sim = simulators.get("arm", **SET_ARM)
    opts = inference.make_options("cinn", {"steps": 20, "blocks": 2, "hidden": 16, "batch_size": 64, "restarts": 1})
    est = inference.fit(sim, method="cinn", budget=500, options=opts, generator=torch.Generator().manual_seed(0))
    path = tmp_path_factory.mktemp("est") / "arm-set"
    est.save(path)
    return path


def _elements(k: int, seed: int = 0) -> np.ndarray:
    sim = simulators.get("arm", **SET_ARM)
    g = torch.Generator().manual_seed(seed)
    return sim.simulate(torch.tensor([[0.0, 0.3, -0.2, 0.4]]), n_obs=k, generator=g)[0].numpy()


def test_as_set_reads_all_csv_rows_as_one_set(tmp_path):
    sim = simulators.get("arm", **SET_ARM)
    el = _elements(5)
    path = tmp_path / "set.csv"
    path.write_text("y1,y2\n" + "\n".join(f"{a},{b}" for a, b in el) + "\n")
    x = read_observations(path, sim, as_set=True)
    assert x.shape == (1, 5, 2)
    np.testing.assert_allclose(x[0].numpy(), el, rtol=1e-6)  # float32 round trip of the written decimals


def test_npy_sets_of_any_size_in_range(tmp_path):
    sim = simulators.get("arm", **SET_ARM)
    one, several = tmp_path / "one.npy", tmp_path / "several.npy"
    np.save(one, _elements(3))
    np.save(several, np.stack([_elements(7, s) for s in range(4)]))
    assert read_observations(one, sim).shape == (1, 3, 2)
    assert read_observations(several, sim).shape == (4, 7, 2)


@pytest.mark.parametrize(
    ("name", "content", "as_set", "message"),
    [
        ("set.csv", "0.1,1.5\n0.2,1.4\n", False, "pass --as-set"),
        ("big.npy", np.zeros((13, 2)), False, "arm takes sets of 2 to 12"),
        ("empty.npy", np.zeros((0, 2)), False, "empty array"),
        ("wide.npy", np.zeros((4, 3)), False, r"expected one set \(K, 2\)"),
        ("wide.csv", "0.1,1.5,0.3\n0.2,1.4,0.1\n", True, "row 0 has 3 values"),
        ("nan.csv", "0.1,1.5\nnan,1.4\n", True, "not finite"),
        ("set.json", "[[0.1, 1.5]]", False, "from .npy"),
    ],
)
def test_bad_sets_are_one_line_errors(tmp_path, name, content, as_set, message):
    sim = simulators.get("arm", **SET_ARM)
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content)
    else:
        np.save(path, content)
    with pytest.raises(ValueError, match=message) as info:
        read_observations(path, sim, as_set=as_set)
    assert "\n" not in str(info.value)


def test_as_set_needs_a_set_valued_simulator(tmp_path):
    path = tmp_path / "obs.csv"
    path.write_text("0.1,1.5\n")
    with pytest.raises(ValueError, match="needs a set-valued simulator"):
        read_observations(path, simulators.get("arm"), as_set=True)


def test_zoo_infer_as_set_end_to_end(set_estimator_dir, tmp_path):
    path = tmp_path / "set.csv"
    path.write_text("\n".join(f"{a},{b}" for a, b in _elements(6)) + "\n")
    out = tmp_path / "out"
    args = ["infer", "--estimator", str(set_estimator_dir), "--observation", str(path), "--out", str(out)]
    r = CliRunner().invoke(main, [*args, "--as-set", "-n", "50", "--no-plots", "-q"])
    assert r.exit_code == 0, r.output
    res = read_posterior(out / "posterior.nc")
    assert res.n_observations == 1 and res.observation.shape == (1, 6, 2)
    # without --as-set the CSV is refused before anything is written
    r = CliRunner().invoke(main, [*args, "-q", "--overwrite"])
    assert r.exit_code == 2 and "pass --as-set" in r.output
    # --as-set without an observation file is a usage error
    r = CliRunner().invoke(main, ["infer", "-s", "arm", "--theta", "0,0,0,0", "--as-set", "--out", str(out)])
    assert r.exit_code == 2 and "--as-set applies to a CSV" in r.output
