"""Simulation tables: (theta, x) pairs in one compressed HDF5 file, written in chunks and resumable.

This is the only module below ``inference/`` that touches h5py. Simulation tables are simulator data — the
shipped tissue dataset is one, read by the tissue simulator itself — and ``simulators/`` imports nothing of
ours, so their format lives here rather than in ``inference/results.py`` (which owns posterior result files).

Layout: datasets ``theta`` (N, D) and ``x`` (N, *obs_shape), float32, gzip + shuffle, chunked by rows; attributes
``simulator``, ``options`` (JSON), ``param_names`` (JSON), ``seed``, ``n``, ``chunk_size``, ``chunks_done``,
``complete``, ``zoo_version``, ``torch_version``, ``created``.

Chunk ``i`` is simulated with its own generator seeded from ``(seed, i)``, so a table is a pure function of
``(simulator, options, seed, n, chunk_size)``.

Crash consistency. Until it is complete a table is a folder ``<out>.partial/``: ``settings.json`` and one file per
finished chunk (``chunk-000012.npz``), each written all or nothing (:func:`simulators.writes.write_atomic`), so a
chunk file exists only once all its rows are on disk and no later write touches it. ``resume`` keeps the chunks it
can read back with the right shapes and recomputes the rest (a chunk killed mid-write left only a temporary, removed
when that chunk is written again). The finished HDF5 file is assembled in a temporary beside ``out`` and renamed
onto it; then the folder goes. (Writing the chunks into one HDF5 file, as before, was not: a kill during a
write could damage rows of a chunk already counted as done.) No name zoo writes through is predictable: a symbolic
link planted at ``<out>.partial`` is refused on resume and replaced (never followed) otherwise.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from tqdm.auto import tqdm

from simulators.devices import check_device
from simulators.protocol import Simulator
from simulators.scale import map_chunks, simulate_chunk
from simulators.writes import follow_umask, temporary, write_atomic

DEFAULT_CHUNK = 100_000


def partial_path(out: str | os.PathLike) -> Path:
    """Where an unfinished table is kept: the folder ``<out>.partial``."""
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
    client: Any = None,
) -> Path:
    """Simulate ``n`` prior draws and their observations into an HDF5 table at ``out``.

    Arguments:
        simulator: any simulator (``simulators.get(name, **options)``).
        n: number of (theta, x) pairs.
        out: the output file; chunks are kept in the folder ``<out>.partial`` until the table is complete.
        seed: base seed; chunk ``i`` uses :func:`chunk_generator` ``(seed, i)``.
        chunk_size: rows simulated and written at a time (bounds memory); default the simulator's
            ``chunk_size`` attribute or 100 000.
        resume: continue ``<out>.partial``: keep its intact chunks, simulate the rest (settings must match).
        overwrite: replace an existing ``out``.
        progress: show a progress bar with simulations per second.
        device: where to simulate.
        client: a ``distributed.Client``: the chunks are simulated on its workers (:mod:`simulators.scale`); the
            table is bitwise the same as without one.

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
    device = check_device(device)
    attrs = {
        "simulator": simulator.name,
        "options": json.dumps(getattr(simulator, "options", {}), sort_keys=True),
        "param_names": json.dumps(list(simulator.param_names)),
        "seed": int(seed),
        "n": int(n),
        "chunk_size": chunk_size,
    }
    if out.is_dir() and not out.is_symlink():
        raise ValueError(f"--out {out} is a folder; give the table's file name, e.g. {out / 'table.h5'}")
    if (out.exists() or out.is_symlink()) and not overwrite:
        if resume:  # a finished table: nothing to resume if it is this run's, a clear refusal if it is not
            _check_finished(out, attrs)
            return out
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    if not out.parent.exists():
        raise FileNotFoundError(f"output directory {out.parent} does not exist")
    part = partial_path(out)
    n_chunks = math.ceil(n / chunk_size)
    d, obs = len(simulator.param_names), tuple(simulator.obs_shape)
    if resume and (part.exists() or part.is_symlink()):
        settings = _open_partial(part, attrs)
    else:
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        settings = _new_partial(part, {**attrs, **_versions(), "created": created})
    todo = [i for i in range(n_chunks) if not _chunk_intact(part, i, _rows(i, chunk_size, n), d, obs)]
    bar = tqdm(total=n, disable=not progress, unit="sim", unit_scale=True)
    bar.update(n - sum(_rows(i, chunk_size, n) for i in todo))
    chunks = [(i, _rows(i, chunk_size, n)) for i in todo]
    if client is None:
        results = (simulate_chunk(simulator, seed, i, rows, device) for i, rows in chunks)
    else:
        results = map_chunks(client, simulator, seed, chunks, device)
    for i, theta, x in results:
        _write_chunk(part, i, theta, x)
        bar.update(len(theta))
    bar.close()
    _assemble(part, out, settings, n_chunks, (n, d), (n, *obs), min(chunk_size, n, 4096))
    return out


def _rows(i: int, chunk_size: int, n: int) -> int:
    return min((i + 1) * chunk_size, n) - i * chunk_size


def _chunk_file(part: Path, i: int) -> Path:
    return part / f"chunk-{i:06d}.npz"


def _new_partial(part: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """A fresh ``<out>.partial/`` folder with ``settings.json`` (an old one, or a link planted there, goes first)."""
    if part.is_symlink() or part.is_file():
        part.unlink()  # the link itself, never its target
    elif part.is_dir():
        shutil.rmtree(part)
    part.mkdir()
    write_atomic(part / "settings.json", json.dumps(settings, sort_keys=True).encode())
    return settings


def _open_partial(part: Path, attrs: dict[str, Any]) -> dict[str, Any]:
    """The settings of the unfinished table at ``part``, checked against this run's ``attrs``."""
    if part.is_symlink():
        raise ValueError(f"cannot resume {part}: it is a symbolic link, which zoo does not follow; remove it")
    if part.is_file():
        raise ValueError(
            f"cannot resume {part}: it is a single-file partial table of an earlier zoo (not crash-safe); delete it "
            "or rerun without --resume"
        )
    try:
        settings = json.loads((part / "settings.json").read_text())
    except (OSError, ValueError) as e:
        raise ValueError(
            f"cannot resume {part}: its settings.json is unreadable ({e.__class__.__name__}); delete the folder or "
            "rerun without --resume"
        ) from e
    for k, v in attrs.items():
        if settings.get(k) != v:
            raise ValueError(
                f"cannot resume {part}: its {k} is {settings.get(k)!r}, this run's is {v!r}; "
                "rerun with the original settings or without --resume"
            )
    return settings


def _chunk_intact(part: Path, i: int, rows: int, d: int, obs: tuple[int, ...]) -> bool:
    """Whether chunk ``i`` is on disk, readable, of the right shapes and dtype (else it is simulated again)."""
    path = _chunk_file(part, i)
    if path.is_symlink() or not path.is_file():
        return False
    try:
        with np.load(path, allow_pickle=False) as z:
            theta, x = z["theta"], z["x"]
            return theta.shape == (rows, d) and x.shape == (rows, *obs) and theta.dtype == x.dtype == np.float32
    except Exception:  # noqa: BLE001 - any unreadable chunk is recomputed
        return False


def _write_chunk(part: Path, i: int, theta: np.ndarray, x: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez(buf, theta=theta.astype(np.float32), x=x.astype(np.float32))
    write_atomic(_chunk_file(part, i), buf.getvalue())


def _assemble(
    part: Path, out: Path, settings: dict, n_chunks: int, theta_shape: tuple, x_shape: tuple, rows: int
) -> None:
    """Copy the chunks into the final HDF5 table (a temporary renamed onto ``out``), then remove ``part``."""
    fd, tmp = temporary(out)
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs.update(settings)
            kw = {"compression": "gzip", "shuffle": True}
            th = f.create_dataset("theta", theta_shape, "f4", chunks=(rows, theta_shape[1]), **kw)
            xs = f.create_dataset("x", x_shape, "f4", chunks=(rows, *x_shape[1:]), **kw)
            lo = 0
            for i in range(n_chunks):
                with np.load(_chunk_file(part, i), allow_pickle=False) as z:
                    theta, x = z["theta"], z["x"]
                th[lo : lo + len(theta)], xs[lo : lo + len(x)] = theta, x
                lo += len(theta)
            f.attrs["chunks_done"] = n_chunks
            f.attrs["complete"] = True
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        follow_umask(tmp)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    shutil.rmtree(part)


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
    if path.is_dir():
        raise ValueError(
            f"{path} is an incomplete table (a folder of finished chunks); finish it with zoo simulate --resume"
        )
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
