"""A user's own simulator from the command line, end to end, each command in a fresh process (as a user runs them).

The simulator lives in a module the test writes (not registered, not in zoo), with a constrained prior; nothing
registers it: every command names it, and the saved estimator rebuilds it (with --trust-code) or samples without it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from inference.results import read_calibration, read_posterior

MODULE = """
import numpy as np
import torch
from torch.distributions import Gamma, LogNormal, Uniform
import simulators

T = np.linspace(0.0, 4.0, 8)

def decay(theta, rng):
    rate, amplitude = theta[:, :1], theta[:, 1:2]
    return amplitude * np.exp(-rate * T) + 0.05 * rng.normal(size=(len(theta), len(T)))

def make(noise_free: bool = False):
    return simulators.from_function(decay, [Gamma(2.0, 2.0), Uniform(0.5, 2.0)], param_names=("rate", "amplitude"),
                                    name="decay")
"""
TRAIN = [
    *("--option", "steps=40", "--option", "val_every=20", "--option", "blocks=2", "--option", "hidden=16"),
    *("--option", "restarts=1"),
]


def zoo(*args: str, cwd: Path, ok: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(cwd), "OMP_NUM_THREADS": "1"}
    exe = Path(sys.executable).with_name("zoo")
    r = subprocess.run([str(exe), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if ok:
        assert r.returncode == 0, r.stderr
    return r


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("own")
    (d / "mysims.py").write_text(MODULE)
    return d


def test_simulate_train_infer_diagnose_in_fresh_processes(work):
    zoo("simulate", "--simulator", "mysims:make", "-n", "2000", "--out", "table.h5", "-q", cwd=work)
    zoo("train", "-s", "mysims:make", "-m", "cinn", "-b", "2000", *TRAIN, "--out", "est", "-q", cwd=work)
    r = zoo("infer", "--estimator", "est", "--trust-code", "--test-index", "3", "--out", "inf", "-q", cwd=work)
    res = read_posterior(work / "inf" / "posterior.nc")
    assert res.param_names == ("rate", "amplitude") and np.isfinite(res.sample_stats["resimulation_error"]).any()
    assert (res.flat(0)[:, 0] > 0).all() and ((res.flat(0)[:, 1] > 0.5) & (res.flat(0)[:, 1] < 2)).all()
    zoo("diagnose", "--estimator", "est", "--trust-code", "--n-test", "10", "-n", "50", "--out", "diag", "-q", cwd=work)
    assert read_calibration(work / "diag" / "calibration.nc").result.n_observations == 10
    # without --trust-code the directory's code is not imported: sampling works, re-simulation is skipped in one line
    r = zoo("infer", "--estimator", "est", "--observation", "table.h5", "--truth", "table.h5", "--out", "o2", "-q",
            "--no-plots", "-n", "20", cwd=work)  # fmt: skip
    assert "note: no prior draws and no re-simulation" in r.stderr and "--trust-code" in r.stderr
    res = read_posterior(work / "o2" / "posterior.nc")
    assert res.n_observations == 2000 and res.theta_true.shape == (2000, 2)
    r = zoo("infer", "--estimator", "est", "--test-index", "0", "--out", "o3", "-q", cwd=work, ok=False)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--trust-code" in r.stderr


def test_train_from_tables_a_user_has(work):
    zoo("simulate", "--simulator", "mysims:make", "-n", "1500", "--out", "t2.h5", "-q", cwd=work)
    zoo("train", "--simulations", "t2.h5", "-m", "cinn", *TRAIN, "--out", "from_h5", "-q", cwd=work)
    rng = np.random.default_rng(0)
    theta = rng.uniform(0.5, 2.0, size=(1500, 2))
    np.savez(work / "mine.npz", theta=theta, x=theta @ rng.normal(size=(2, 5)), param_names=np.array(["a", "b"]))
    zoo("train", "--simulations", "mine.npz", "-m", "cinn", *TRAIN, "--out", "from_npz", "-q", cwd=work)
    np.save(work / "obs.npy", (theta[:3] @ np.ones((2, 5))).astype("float32"))
    zoo("infer", "--estimator", "from_npz", "--observation", "obs.npy", "--out", "o", "--no-plots", "-q", cwd=work)
    res = read_posterior(work / "o" / "posterior.nc")
    assert res.param_names == ("a", "b") and res.draws.shape[2:] == (3, 2)
    r = zoo("train", "--simulations", "mine.npz", "-m", "abc", "--out", "x", "-q", cwd=work, ok=False)
    assert r.returncode == 2 and "cannot train from a table" in r.stderr
