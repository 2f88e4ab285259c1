"""Posterior draws for many observations, partition by partition: bounded memory, resumable, in one process or on a
Dask cluster, with the same draws either way.

The observations are cut into partitions of ``partition`` rows. Partition ``p`` is one :func:`inference.infer` call
with the generator of ``(seed, p)`` (:func:`simulators.chunk_generator`, the scheme of simulation tables), so its draws
depend on the seed and the partition size only — not on the number of workers, nor on whether there is a cluster.
Each finished partition is kept as ``OUT.partial/part-NNNNNN.npz`` (written atomically), so a killed run resumes
with the partitions it has; when all are there they are streamed into one NetCDF4 file, compressed and chunked by
observation, with the layout of :class:`~inference.results.PosteriorSamples` (``read_posterior(path,
observations=...)`` reads a few observations without loading the rest). On a cluster each worker loads the estimator
once from its directory (or shipped name); the estimator itself never travels.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from inference.results import netcdf
from simulators.sampling import chunk_generator
from simulators.writes import check_folder, write_atomic

PARTITION = 1024
"""Observations per partition (the unit of work, of randomness and of the file's chunks)."""
PRIOR_DRAWS = 2000


def infer_batch(
    estimator: Any,
    x: Any,
    out: str | os.PathLike,
    *,
    n_samples: int = 1000,
    seed: int = 0,
    theta_true: Any = None,
    n_predictive: int = 0,
    partition: int = PARTITION,
    client: Any = None,
    trust_code: bool = False,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Draw the posterior of every observation in ``x`` and write one result file ``out``.

    Arguments:
        estimator: a saved estimator directory or shipped name (needed with ``client``: workers load it), or an
            estimator object (one process only).
        x: observations ``(N, *obs_shape)``: an array, a tensor or an ``h5py`` dataset (read partition by partition).
        out: the result file to write.
        n_samples: draws per observation.
        seed: base seed; partition ``p`` draws from the generator of ``(seed, p)``.
        theta_true: true parameters ``(N, D)`` where known.
        n_predictive: draws per observation to re-simulate (0: none; at scale it costs a simulation per draw).
        partition: observations per partition.
        client: a ``distributed.Client`` to spread partitions over its workers (``None``: this process).
        trust_code: let workers rebuild a simulator that is the user's module or file.
        resume: continue from the partitions of an interrupted run with the same settings.
        overwrite: replace ``out`` if it exists.
        progress: show a progress bar over observations.

    Returns:
        the path of the result file.

    Raises:
        FileExistsError: ``out`` exists and neither ``overwrite`` nor ``resume``.
        ValueError: a bad argument, settings that differ from the interrupted run's, or bad observations (one line).
    """
    out = Path(out)
    n = len(x)
    if not isinstance(partition, int) or isinstance(partition, bool) or partition < 1:
        raise ValueError(f"partition must be a whole number >= 1, got {partition!r}")
    if n < 1:
        raise ValueError("no observations to draw from")
    if client is not None and not isinstance(estimator, str | os.PathLike):
        raise ValueError("on a cluster the workers load the estimator: give its directory or shipped name")
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise FileExistsError(f"{out} already exists; pass --overwrite to replace it")
    check_folder(out.parent, "--out")
    ref = os.fspath(estimator) if isinstance(estimator, str | os.PathLike) else None
    settings = {"n": n, "n_samples": n_samples, "seed": int(seed), "partition": partition, "n_predictive": n_predictive}
    settings["estimator"] = ref or type(estimator).__name__
    part = _partial(out, settings, resume)
    parts = [(p, p * partition, min(n, (p + 1) * partition)) for p in range((n + partition - 1) // partition)]
    todo = [(p, a, b) for p, a, b in parts if not _intact(part / _name(p))]
    bar = tqdm(total=n, disable=not progress, unit="obs", unit_scale=True, desc="posterior")
    bar.update(n - sum(b - a for _, a, b in todo))
    t0 = time.perf_counter()
    job = {"n_samples": n_samples, "seed": int(seed), "n_predictive": n_predictive, "trust_code": trust_code}
    work = [(p, _slice(x, a, b), None if theta_true is None else _slice(theta_true, a, b)) for p, a, b in todo]
    runs = _run_local(estimator, work, job) if client is None else _run_cluster(client, ref, work, job)
    for p, arrays in runs:
        write_atomic(part / _name(p), _npz_bytes(arrays))
        bar.update(parts[p][2] - parts[p][1])
    bar.close()
    path = _assemble(part, out, parts, n, wall=time.perf_counter() - t0, overwrite=overwrite)
    shutil.rmtree(part, ignore_errors=True)
    return path


def partition_layout(
    estimator: Any, x: torch.Tensor, truth: torch.Tensor | None, p: int, job: dict[str, Any]
) -> dict[str, np.ndarray]:
    """Partition ``p``: one :func:`inference.infer` call with the generator of ``(seed, p)``, flattened to arrays
    (``group/variable`` -> data; ``@layout``: dims, coordinates and attributes as JSON)."""
    from inference.infer import infer

    result = infer(
        estimator,
        x,
        n_samples=job["n_samples"],
        generator=chunk_generator(job["seed"], p),
        seed=job["seed"],
        theta_true=truth,
        n_prior=PRIOR_DRAWS if p == 0 else 0,
        n_predictive=job["n_predictive"],
    )
    attrs, groups = result.layout()
    arrays: dict[str, np.ndarray] = {}
    layout: dict[str, Any] = {"attrs": _plain(attrs), "groups": {}}
    for name, g in groups.items():
        layout["groups"][name] = {
            "dims": {v: list(dims) for v, (dims, _) in g.variables.items()},
            "attrs": _plain(g.attrs),
            "coords": [c for c in g.coords if c != "observation"],
        }
        for v, (_, data) in g.variables.items():
            arrays[f"{name}/{v}"] = np.asarray(data)
        for c, values in g.coords.items():
            if c != "observation":
                arrays[f"{name}@{c}"] = np.asarray(values)
    arrays["@layout"] = np.array(json.dumps(layout))
    return arrays


def misspecified(path: str | os.PathLike, level: float = 0.01) -> tuple[int, int]:
    """``(observations, how many have a misspecification p-value below level)`` of a result file, read from disk."""
    import h5py

    with h5py.File(path, "r") as f:
        n = int(f["observed_data"]["x"].shape[0])
        stats = f.get("sample_stats")
        if stats is None or "misspecification_pvalue" not in stats:
            return n, 0
        return n, int((stats["misspecification_pvalue"][()] < level).sum())


# -- running partitions ------------------------------------------------------------------------------------------


def _run_local(estimator: Any, work: list, job: dict[str, Any]) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    est = _load(estimator, job["trust_code"]) if isinstance(estimator, str | os.PathLike) else estimator
    for p, x, truth in work:
        yield p, partition_layout(est, x, truth, p, job)


_LOADED: dict[tuple[str, bool], Any] = {}


def _load(ref: str | os.PathLike, trust_code: bool) -> Any:
    """The estimator of ``ref``, loaded once per process (on a worker: once for all its partitions)."""
    key = (os.fspath(ref), trust_code)
    if key not in _LOADED:
        from inference.methods import load

        _LOADED[key] = load(ref, trust_code=trust_code)
    return _LOADED[key]


def _on_worker(ref: str, x: Any, truth: Any, p: int, job: dict[str, Any]) -> tuple[int, dict[str, np.ndarray]]:
    torch.set_num_threads(1)  # one process per core, and the same arithmetic as a one-thread run
    return p, partition_layout(_load(ref, job["trust_code"]), x, truth, p, job)


def _run_cluster(client: Any, ref: str, work: list, job: dict[str, Any]) -> Iterator[tuple[int, dict[str, Any]]]:
    from simulators.scale import bounded

    def submit(item: tuple) -> Any:
        p, x, truth = item
        return client.submit(_on_worker, ref, x, truth, p, job, pure=False)

    return bounded(client, submit, work)


# -- the partial folder and the final file --------------------------------------------------------------------------


def _partial(out: Path, settings: dict[str, Any], resume: bool) -> Path:
    part = out.with_name(out.name + ".partial")
    if part.is_symlink():
        raise ValueError(f"{part} is a symbolic link; zoo does not write through links at the names it chooses")
    saved = part / "settings.json"
    if resume and saved.is_file():
        before = json.loads(saved.read_text())
        if before != settings:
            changed = sorted(k for k in settings if before.get(k) != settings[k])
            raise ValueError(f"{part} is from a run with other settings ({', '.join(changed)}); drop --resume")
        return part
    if part.exists():
        shutil.rmtree(part)
    part.mkdir(parents=True)
    write_atomic(saved, json.dumps(settings, sort_keys=True).encode())
    return part


def _name(p: int) -> str:
    return f"part-{p:06d}.npz"


def _intact(path: Path) -> bool:
    try:
        with np.load(path, allow_pickle=False) as z:
            return "@layout" in z.files
    except (OSError, ValueError, EOFError):
        return False


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _assemble(
    part: Path, out: Path, parts: list[tuple[int, int, int]], n: int, *, wall: float, overwrite: bool
) -> Path:
    """Stream the partitions into one NetCDF4 file (one partition in memory at a time), then rename it into place."""
    with np.load(part / _name(0), allow_pickle=False) as z:
        first = {k: z[k] for k in z.files}
    layout = json.loads(str(first["@layout"]))
    layout["attrs"]["wall_time_s"] = wall

    def fill(write: Callable[[str, str, int, int, np.ndarray], None]) -> None:
        for p, a, b in parts:
            with np.load(part / _name(p), allow_pickle=False) as z:
                for key in z.files:
                    if "/" in key:
                        group, var = key.split("/", 1)
                        write(group, var, a, b, z[key])

    return netcdf.write_streamed(out, layout, first, n, parts[0][2], fill, overwrite=overwrite)


def _slice(a: Any, start: int, stop: int) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a[start:stop]))


def _plain(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in attrs.items()}


__all__ = ["PARTITION", "infer_batch", "misspecified", "partition_layout"]
