"""SIGKILL a real ``zoo infer`` process at a random moment, run it again: the result is the uninterrupted run's, the
output folder holds no temporaries, and a finished file is never half written. One kill by default, more in
``slow``."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from inference.results import read_posterior

ZOO = [sys.executable, "-c", "from zoo_cli.main import main; main()"]
INFER = ["infer", "-s", "arm", "--theta", "0,0.3,-0.2,0.4", "-n", "2000", "--seed", "3", "--threads", "1"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "out"
    subprocess.run([*ZOO, *INFER, "--out", str(out)], check=True, capture_output=True)
    return read_posterior(out / "posterior.nc").draws, sorted(p.name for p in out.iterdir())


def _kill_and_rerun(tmp_path: Path, reference, rng: random.Random, sigkill_when) -> None:
    out = tmp_path / "out"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    sigkill_when([*ZOO, *INFER, "--out", str(out)], out.exists, rng.uniform(0, 0.6), **quiet)  # once writing starts
    for f in out.glob("*.nc"):  # whatever was renamed into place is a whole file
        assert read_posterior(f).draws.shape == reference[0].shape
    r = subprocess.run([*ZOO, *INFER, "--out", str(out), "--overwrite"], capture_output=True)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    assert (read_posterior(out / "posterior.nc").draws == reference[0]).all()
    assert sorted(p.name for p in out.iterdir()) == reference[1]  # no temporaries of the killed run


@pytest.mark.parametrize("seed", [0, *(pytest.param(s, marks=pytest.mark.slow) for s in range(1, 11))])
def test_sigkill_then_rerun_leaves_the_same_result_and_no_temporaries(tmp_path, reference, seed, sigkill_when):
    _kill_and_rerun(tmp_path, reference, random.Random(seed), sigkill_when)
