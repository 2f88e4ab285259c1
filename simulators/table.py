"""Simulation tables: (theta, x) pairs in one compressed HDF5 file, written in chunks and resumable.

This is the only module below ``inference/`` that touches h5py. Simulation tables are simulator data — the
shipped tissue dataset is one, read by the tissue simulator itself — and ``simulators/`` imports nothing of
ours, so their format lives here rather than in ``inference/results.py`` (which owns posterior result files).

Layout: datasets ``theta`` (N, D) and ``x`` (N, *obs_shape), float32, gzip + shuffle, chunked by rows; attributes
``simulator``, ``options`` (JSON), ``param_names`` (JSON), ``seed``, ``n``, ``chunk_size``, ``chunks_done``,
``complete``, ``zoo_version``, ``torch_version``, ``created``.

Chunk ``i`` is simulated with its own generator seeded from ``(seed, i)``, so a table is a pure function of
``(simulator, options, seed, n, chunk_size)`` and an interrupted run resumes at the first incomplete chunk with
nothing duplicated or lost. Until it is complete the table lives at ``<out>.partial``; the last step renames it.
"""

from __future__ import annotations

import json
import math
import os
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from tqdm.auto import tqdm

from simulators.protocol import Simulator
from simulators.sampling import chunk_generator, sample_prior

DEFAULT_CHUNK = 100_000


def partial_path(out: str | os.PathLike) -> Path:
    """Where an unfinished table is kept: ``<out>.partial``."""
    out = Path(out)
    return out.with_name(out.name + ".partial")


def simulate_table(
    simulator: Simulator,
    n: int,
    out: str | os.PathLike,
    *,
    seed: int = 0,
    chunk_size: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> Path:
    """Simulate ``n`` prior draws and their observations into an HDF5 table at ``out``.

    Arguments:
        simulator: any simulator (``simulators.get(name, **options)``).
        n: number of (theta, x) pairs.
        out: the output file; written to ``<out>.partial`` and renamed when complete.
        seed: base seed; chunk ``i`` uses :func:`chunk_generator` ``(seed, i)``.
        chunk_size: rows simulated and written at a time (bounds memory); default the simulator's
            ``chunk_size`` attribute or 100 000.
        resume: continue ``<out>.partial`` from its last complete chunk (settings must match).
        overwrite: replace an existing ``out``.
        progress: show a progress bar with simulations per second.
        device: where to simulate.

    Returns:
        the path of the finished table.

    Raises:
        FileExistsError: ``out`` exists and ``overwrite`` is false (with ``resume``: ``out`` is a finished table
            of other settings; one of the same settings is returned as it is, nothing to resume).
        ValueError: bad ``n`` / ``chunk_size``, or a partial table whose settings differ from this run's.
    """
    out = Path(out)
    if n <= 0:
        raise ValueError(f"n must be a positive number of simulations, got {n}")
    chunk_size = int(chunk_size or getattr(simulator, "chunk_size", DEFAULT_CHUNK))
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    attrs = {
        "simulator": simulator.name,
        "options": json.dumps(getattr(simulator, "options", {}), sort_keys=True),
        "param_names": json.dumps(list(simulator.param_names)),
        "seed": int(seed),
        "n": int(n),
        "chunk_size": chunk_size,
    }
    if out.exists() and not overwrite:
        if resume:  # a finished table: nothing to resume if it is this run's, a clear refusal if it is not
            _check_finished(out, attrs)
            return out
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    if not out.parent.exists():
        raise FileNotFoundError(f"output directory {out.parent} does not exist")
    part = partial_path(out)
    n_chunks = math.ceil(n / chunk_size)
    if resume and part.exists():
        try:
            f = h5py.File(part, "a")
        except OSError as e:
            raise ValueError(
                f"cannot resume {part}: it is unreadable ({e.__class__.__name__}; killed before its first chunk "
                "was on disk?); delete it or rerun without --resume"
            ) from e
        for k, v in attrs.items():
            found = _decode(f.attrs.get(k))
            if found != v:
                f.close()
                raise ValueError(
                    f"cannot resume {part}: its {k} is {found!r}, this run's is {v!r}; "
                    "rerun with the original settings or without --resume"
                )
    else:
        f = h5py.File(part, "w")
        f.attrs.update(attrs)
        f.attrs.update(_versions())
        f.attrs["chunks_done"] = 0
        f.attrs["complete"] = False
        f.attrs["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        rows = min(chunk_size, n, 4096)
        d = len(simulator.param_names)
        obs = tuple(simulator.obs_shape)
        f.create_dataset("theta", (n, d), "f4", chunks=(rows, d), compression="gzip", shuffle=True)
        f.create_dataset("x", (n, *obs), "f4", chunks=(rows, *obs), compression="gzip", shuffle=True)
    try:
        done = int(f.attrs["chunks_done"])
        bar = tqdm(total=n, initial=min(done * chunk_size, n), disable=not progress, unit="sim", unit_scale=True)
        for i in range(done, n_chunks):
            lo, hi = i * chunk_size, min((i + 1) * chunk_size, n)
            g = chunk_generator(seed, i, device)
            theta = sample_prior(simulator.prior, (hi - lo,), generator=g).to(device)
            x = simulator.simulate(theta, generator=g)
            f["theta"][lo:hi] = theta.detach().cpu().numpy()
            f["x"][lo:hi] = x.detach().cpu().numpy()
            f.flush()
            f.attrs["chunks_done"] = i + 1  # only after the rows are on disk: a crash redoes this chunk
            f.flush()
            bar.update(hi - lo)
        bar.close()
        f.attrs["complete"] = True
    finally:
        f.close()
    os.replace(part, out)
    return out


def read_table(path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Read a complete simulation table.

    Returns:
        theta (N, D), x (N, *obs_shape) as float32 tensors, and the attributes (JSON fields decoded).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a zoo simulation table, or an incomplete one.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"simulation table {path} does not exist")
    try:
        with h5py.File(path, "r") as f:
            if "theta" not in f or "x" not in f:
                raise ValueError(f"{path} is not a zoo simulation table (expected datasets 'theta' and 'x')")
            attrs = {k: _decode(v) for k, v in f.attrs.items()}
            if not attrs.get("complete", False):
                raise ValueError(f"{path} is an incomplete table; finish it with zoo simulate --resume")
            theta = torch.from_numpy(f["theta"][()])
            x = torch.from_numpy(f["x"][()])
    except OSError as e:
        raise ValueError(f"{path} is not a readable HDF5 simulation table ({e})") from e
    for k in ("options", "param_names"):
        if isinstance(attrs.get(k), str):
            attrs[k] = json.loads(attrs[k])
    return theta, x, attrs


def _decode(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.generic):
        return v.item()
    return v


def _versions() -> dict[str, str]:
    try:
        zv = version("zoo")
    except PackageNotFoundError:
        zv = "0.0.0+source"
    return {"zoo_version": str(zv), "torch_version": str(torch.__version__)}


def _check_finished(out: Path, attrs: dict) -> None:
    """Raise FileExistsError unless ``out`` is a complete table made with ``attrs``."""
    try:
        with h5py.File(out, "r") as f:
            found = {k: _decode(f.attrs.get(k)) for k in attrs}
            complete = bool(f.attrs.get("complete", False))
    except OSError:
        raise FileExistsError(f"{out} exists and is not a zoo table; pass --overwrite to replace it") from None
    differ = [k for k, v in attrs.items() if found[k] != v]
    if differ:
        k = differ[0]
        raise FileExistsError(
            f"{out} is a finished table of other settings (its {k} is {found[k]!r}, this run's is {attrs[k]!r}); "
            "nothing to resume: pass --overwrite to replace it or choose another --out"
        )
    if not complete:
        raise FileExistsError(f"{out} exists but is not marked complete; pass --overwrite to simulate it again")
