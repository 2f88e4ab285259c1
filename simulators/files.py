"""Arrays a user already has: simulation tables, observations and true parameters from HDF5, NPZ, NPY or CSV files.

``zoo train --simulations FILE``, ``zoo infer --observation FILE`` and ``zoo infer --truth FILE`` read through
:func:`read_array` / :func:`read_simulations`. Layouts:

- HDF5 (``.h5``, ``.hdf5``): datasets ``theta`` and ``x`` (the layout ``zoo simulate`` writes; an unfinished table is
  refused), or the datasets named by ``theta_key`` / ``x_key``; parameter names from the ``param_names`` attribute.
- NPZ: arrays ``theta`` and ``x``, or the keys given; parameter names from an array ``param_names`` if present.
- NPY: one array (observations or parameters only).
- CSV: a header line naming the columns; the parameter columns are ``theta_key`` (comma-separated names) or the
  given parameter names, the observation columns ``x_key`` or all others.

Every failure is a one-line ``ValueError`` naming the file and what was expected; arrays must be real numbers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

HDF5 = (".h5", ".hdf5")


def parse_json(text: str, what: str) -> Any:
    """``json.loads`` with one-line errors naming ``what``: invalid JSON, nesting too deep to read (a crafted file)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError(f"{what}: JSON nested too deeply to read (a corrupt or crafted file)") from None
    except ValueError as e:
        raise ValueError(f"{what} is not valid JSON ({e})") from None


def read_json(path: str | os.PathLike) -> Any:
    """A JSON file (one-line errors naming the file: missing, not UTF-8, invalid, nested too deeply)."""
    path = Path(path)
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text, so not JSON") from None
    return parse_json(text, str(path))


def load_npy(path: str | os.PathLike, what: str = "") -> np.ndarray:
    """The array of an ``.npy`` file, never unpickled, of real numbers (integers or floating point, not bool or
    complex), not empty; one-line errors naming the file (``what`` says what it should hold)."""
    path = Path(path)
    want = f"; expected {what}" if what else ""
    with path.open("rb") as f:
        if f.read(6) != b"\x93NUMPY":
            raise ValueError(f"{path} is not a NumPy .npy file (it does not start like one){want}")
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise ValueError(f"{path} holds Python objects (pickled data), which zoo never loads{want}") from None
        raise ValueError(f"{path} is not a NumPy .npy array ({_short(e)}){want}") from None
    except (OSError, EOFError) as e:
        raise ValueError(f"{path} is not a NumPy .npy array ({_short(e)}){want}") from None
    if (
        not isinstance(arr, np.ndarray)
        or arr.dtype == bool
        or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer))
    ):
        raise ValueError(
            f"{path} holds {getattr(arr, 'dtype', type(arr).__name__)} data; expected real numbers"
            + (f" ({what})" if what else "")
        )
    if arr.size == 0:
        raise ValueError(f"{path} holds an empty array of shape {arr.shape}{want}")
    return arr


def read_array(path: str | os.PathLike, key: str) -> np.ndarray:
    """One array from a file: dataset / array ``key`` of an HDF5 or NPZ file, the array of an NPY file, or the
    columns ``key`` (comma-separated names; ``x``: all columns) of a CSV file with a header."""
    path = _existing(path)
    ext = path.suffix.lower()
    if ext in HDF5:
        return _h5(path, [key])[0][0]
    if ext == ".npz":
        return _npz(path, [key])[0][0]
    if ext == ".npy":
        return _real(load_npy(path), path, "the array")
    if ext == ".csv":
        names, table = _csv(path)
        cols = names if key == "x" else [c.strip() for c in key.split(",")]
        return table[:, _columns(names, cols, path)]
    raise ValueError(f"unknown file type {path.suffix!r} for {path}; use .h5, .npz, .npy or .csv")


def read_simulations(
    path: str | os.PathLike,
    *,
    theta_key: str | None = None,
    x_key: str | None = None,
    param_names: list[str] | tuple[str, ...] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...] | None]:
    """A table of simulations (theta, x) from a file, with the parameter names where the file records them.

    Arguments:
        path: an HDF5, NPZ or CSV file (see the module docstring).
        theta_key, x_key: dataset / array names (HDF5, NPZ; default ``theta`` and ``x``) or comma-separated column
            names (CSV).
        param_names: the parameter names, for CSV columns (default: from the file).

    Returns:
        theta (N, D) and x (N, *obs_shape) as float32 tensors, and the parameter names (or ``None``).
    """
    path = _existing(path)
    ext = path.suffix.lower()
    for flag, key in (("--theta-key", theta_key), ("--x-key", x_key)):
        if key is not None and not key.strip():
            raise ValueError(f"{flag} is empty; name a dataset / array (or CSV columns a,b,c), or leave it out")
    tk, xk = theta_key or "theta", x_key or "x"
    names: tuple[str, ...] | None = None
    if ext in HDF5:
        (theta, x), attrs = _h5(path, [tk, xk])
        if "complete" in attrs and not attrs["complete"]:
            raise ValueError(f"{path} is an incomplete table; finish it with zoo simulate --resume")
        if isinstance(attrs.get("param_names"), str):
            names = tuple(parse_json(attrs["param_names"], f"{path}: attribute param_names"))
    elif ext == ".npz":
        (theta, x), extra = _npz(path, [tk, xk])
        names = tuple(str(n) for n in extra["param_names"]) if "param_names" in extra else None
    elif ext == ".csv":
        header, table = _csv(path)
        theta_cols = [c.strip() for c in theta_key.split(",")] if theta_key else list(param_names or [])
        if not theta_cols:
            raise ValueError(f"{path}: say which CSV columns are the parameters, --theta-key a,b,c")
        ti = _columns(header, theta_cols, path)
        xi = _columns(header, [c.strip() for c in x_key.split(",")], path) if x_key else None
        xi = xi if xi is not None else [i for i in range(len(header)) if i not in ti]
        theta, x, names = table[:, ti], table[:, xi], tuple(theta_cols)
    else:
        raise ValueError(f"unknown simulation table type {path.suffix!r} for {path}; use .h5, .npz or .csv")
    theta = theta.reshape(len(theta), -1) if theta.ndim == 1 else theta
    if theta.ndim != 2 or len(theta) != len(x) or len(theta) == 0:
        raise ValueError(
            f"{path}: theta has shape {theta.shape} and x {x.shape}; expected theta (N, D) and x (N, ...) with N >= 1"
        )
    if names is not None and len(names) != theta.shape[1]:
        raise ValueError(f"{path}: {len(names)} parameter names for {theta.shape[1]} parameter columns")
    return torch.as_tensor(theta, dtype=torch.float32), torch.as_tensor(x, dtype=torch.float32), names


def _existing(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file {path} does not exist")
    return path


def _real(arr: np.ndarray, path: Path, what: str) -> np.ndarray:
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)) or arr.dtype == bool:
        raise ValueError(f"{path}: {what} holds {arr.dtype} data; expected real numbers")
    arr = np.asarray(arr, dtype=np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{path}: {what} has {arr[idx]} at index {idx}; values must be finite")
    return arr


def _h5(path: Path, keys: list[str]) -> tuple[list[np.ndarray], dict[str, Any]]:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in keys if k not in f or not isinstance(f[k], h5py.Dataset)]
            if missing:
                have = ", ".join(k for k in f if isinstance(f[k], h5py.Dataset)) or "none"
                raise ValueError(f"{path} has no dataset {missing[0]!r} (datasets: {have}); name it with --*-key")
            arrays = [_real(f[k][()], path, f"dataset {k!r}") for k in keys]
            attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    except OSError as e:
        raise ValueError(f"{path} is not a readable HDF5 file ({_short(e)})") from None
    return arrays, attrs


def _npz(path: Path, keys: list[str]) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in keys if k not in z.files]
            if missing:
                raise ValueError(f"{path} has no array {missing[0]!r} (arrays: {', '.join(z.files) or 'none'})")
            arrays = [_real(z[k], path, f"array {k!r}") for k in keys]
            extra = {k: z[k] for k in z.files if k not in keys}
    except ValueError as e:
        if "allow_pickle" not in str(e):
            raise
        raise ValueError(f"{path} holds Python objects (pickled data), which zoo never loads") from None
    except (OSError, EOFError) as e:
        raise ValueError(f"cannot read {path} as a NumPy .npz archive ({_short(e)})") from None
    return arrays, extra


def _csv(path: Path) -> tuple[list[str], np.ndarray]:
    try:
        lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read {path} as a CSV text file ({_short(e)})") from None
    if len(lines) < 2:
        raise ValueError(f"{path} needs a header line naming the columns and at least one row")
    header = [c.strip() for c in lines[0].split(",")]
    rows = []
    for r, line in enumerate(lines[1:]):
        cells = [c.strip() for c in line.split(",")]
        if len(cells) != len(header):
            raise ValueError(f"{path} row {r} has {len(cells)} values for {len(header)} columns")
        try:
            rows.append([float(c) for c in cells])
        except ValueError:
            raise ValueError(f"{path} row {r} holds a value that is not a number: {line[:60]!r}") from None
    return header, _real(np.asarray(rows), path, "the table")


def _columns(header: list[str], names: list[str], path: Path) -> list[int]:
    missing = [n for n in names if n not in header]
    if missing:
        raise ValueError(f"{path} has no column {missing[0]!r} (columns: {', '.join(header)})")
    return [header.index(n) for n in names]


def _short(e: Exception) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__
