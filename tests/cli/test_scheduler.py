"""``--scheduler ADDRESS`` against a real cluster: a ``dask scheduler`` and a ``dask worker`` started as separate
processes on 127.0.0.1 (the only address the suite reaches). ``zoo simulate`` and ``zoo infer`` run against them and
write exactly what a one-process run writes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import simulators

pytest.importorskip("distributed")
ZOO = [sys.executable, "-c", "from zoo_cli.main import main; main()"]
DASK = shutil.which("dask") or str(Path(sys.executable).with_name("dask"))


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cluster")
    info = folder / "scheduler.json"
    local = ["--host", "127.0.0.1", "--no-dashboard"]
    sched = subprocess.Popen(
        [DASK, "scheduler", "--scheduler-file", str(info), *local, "--port", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    worker = None
    try:
        for _ in range(600):
            if info.is_file() and info.stat().st_size:
                break
            time.sleep(0.1)
        address = json.loads(info.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        worker = subprocess.Popen(
            [DASK, "worker", "--scheduler-file", str(info), "--nworkers", "1", "--nthreads", "1", *local],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=folder,
        )
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(1, timeout=60)
        yield address
    finally:
        for p in (worker, sched):
            if p is not None:
                p.terminate()
                p.wait(timeout=30)


def _data(path: Path, groups: tuple[str, ...]) -> dict[str, np.ndarray]:
    out = {}
    with h5py.File(path, "r") as f:
        for g in groups:
            node = f[g] if g else f
            for k, v in node.items():
                if isinstance(v, h5py.Dataset) and v.dtype.kind != "O":
                    out[f"{g}/{k}"] = v[()]
    return out


def test_simulate_and_infer_against_a_running_scheduler(tmp_path, scheduler):
    sim = ["simulate", "-s", "arm", "-n", "3000", "--chunk-size", "1000", "-q"]
    subprocess.run([*ZOO, *sim, "-o", str(tmp_path / "one.h5")], check=True, capture_output=True)
    r = subprocess.run(
        [*ZOO, *sim, "-o", str(tmp_path / "two.h5"), "--scheduler", scheduler], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    a, b = _data(tmp_path / "one.h5", ("",)), _data(tmp_path / "two.h5", ("",))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)

    _, x = simulators.simulate_cases(simulators.get("arm"), range(600), seed=4)
    np.save(tmp_path / "obs.npy", x.numpy())
    inf = ["infer", "--estimator", "arm-cinn", "--observation", str(tmp_path / "obs.npy"), "-n", "40"]
    inf += ["--partition", "200", "--no-plots", "-q"]
    subprocess.run([*ZOO, *inf, "-o", str(tmp_path / "one")], check=True, capture_output=True)
    r = subprocess.run(
        [*ZOO, *inf, "-o", str(tmp_path / "two"), "--scheduler", scheduler], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    groups = ("posterior", "prior", "observed_data", "sample_stats")
    a, b = _data(tmp_path / "one" / "posterior.nc", groups), _data(tmp_path / "two" / "posterior.nc", groups)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_an_unreachable_scheduler_is_one_line_before_any_work(tmp_path):
    r = subprocess.run(
        [*ZOO, "simulate", "-s", "arm", "-n", "10", "-o", str(tmp_path / "t.h5"), "--scheduler", "tcp://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "cannot reach the Dask scheduler" in r.stderr.strip().splitlines()[-1]
    assert list(tmp_path.iterdir()) == []
