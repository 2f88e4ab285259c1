"""Many observations partition by partition (inference.batch): the draws of partition p are those of one
inference.infer call with the generator of (seed, p), with or without a (real, local) Dask cluster; an interrupted run
resumes to the same file; the file reads lazily and in arviz."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import inference
import simulators
from inference.batch import infer_batch
from inference.infer import infer
from inference.results import read_posterior
from simulators.sampling import chunk_generator


@pytest.fixture(scope="module")
def cases():
    theta, x = simulators.simulate_cases(simulators.get("arm"), range(700), seed=5)
    return theta.numpy(), x.numpy()


def _variables(path) -> dict[str, np.ndarray]:
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def test_partitions_are_infer_calls_with_their_own_generator(tmp_path, cases):
    theta, x = cases
    path = infer_batch(
        "arm-cinn", x, tmp_path / "p.nc", n_samples=50, seed=3, partition=300, theta_true=theta, progress=False
    )
    r = read_posterior(path)
    assert r.draws.shape == (1, 50, 700, 4) and r.theta_true.shape == (700, 4)
    est = inference.load("arm-cinn")
    for p, (a, b) in enumerate([(0, 300), (300, 600), (600, 700)]):
        part = infer(
            est, x[a:b], n_samples=50, generator=chunk_generator(3, p), n_prior=2000 if p == 0 else 0, n_predictive=0
        )
        assert np.array_equal(r.draws[:, :, a:b], part.draws)
        assert np.array_equal(
            r.sample_stats["misspecification_pvalue"][a:b], part.sample_stats["misspecification_pvalue"]
        )
    assert r.prior_draws.shape == (2000, 4)
    one = read_posterior(path, observations=650)  # lazily: only that observation is read
    assert np.array_equal(one.draws[:, :, 0], r.draws[:, :, 650]) and np.array_equal(one.observation[0], x[650])
    with h5py.File(path, "r") as f:  # compressed and chunked by partition
        v = f["posterior"]["rail"]
        assert v.compression == "gzip" and v.chunks == (1, 50, 300)
    import arviz

    assert arviz.from_netcdf(path).posterior["rail"].shape == (1, 50, 700)
    assert not (tmp_path / "p.nc.partial").exists()


def test_a_local_dask_cluster_writes_the_same_file(tmp_path, cases):
    distributed = pytest.importorskip("distributed")
    _, x = cases
    one = infer_batch("arm-cinn", x, tmp_path / "one.nc", n_samples=40, seed=1, partition=200, progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        with distributed.Client(c) as client:
            two = infer_batch(
                "arm-cinn", x, tmp_path / "two.nc", n_samples=40, seed=1, partition=200, client=client, progress=False
            )
    a, b = _variables(one), _variables(two)  # every variable; only the creation time (an attribute) differs
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a if a[k].dtype.kind != "O")


def test_an_interrupted_run_resumes_to_the_same_draws(tmp_path, cases):
    _, x = cases
    whole = infer_batch("arm-cinn", x, tmp_path / "whole.nc", n_samples=30, seed=2, partition=200, progress=False)

    class Stop(Exception):
        pass

    calls = []

    def stopping(*args, **kw):  # the third partition dies, as by a kill
        if len(calls) == 2:
            raise Stop
        calls.append(1)
        return original(*args, **kw)

    import inference.batch as batch

    original = batch.partition_layout
    batch.partition_layout = stopping
    try:
        with pytest.raises(Stop):
            infer_batch("arm-cinn", x, tmp_path / "r.nc", n_samples=30, seed=2, partition=200, progress=False)
    finally:
        batch.partition_layout = original
    assert sorted(p.name for p in (tmp_path / "r.nc.partial").iterdir()) == [
        "part-000000.npz",
        "part-000001.npz",
        "settings.json",
    ]
    with pytest.raises(ValueError, match="other settings .*seed"):
        infer_batch("arm-cinn", x, tmp_path / "r.nc", n_samples=30, seed=9, partition=200, resume=True, progress=False)
    infer_batch("arm-cinn", x, tmp_path / "r.nc", n_samples=30, seed=2, partition=200, resume=True, progress=False)
    a, b = _variables(whole), _variables(tmp_path / "r.nc")
    assert all(np.array_equal(a[k], b[k]) for k in a if a[k].dtype.kind != "O")
    assert not (tmp_path / "r.nc.partial").exists()
