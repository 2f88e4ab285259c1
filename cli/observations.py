"""Where ``zoo infer`` gets its observations: a CSV / NPY / JSON file, parameters to simulate, or a test case.

Every reader validates before anything is computed or written and raises ``ValueError`` with one line naming the
file, the expected shape and the offending value; the CLI turns that into exit code 2. The checks of shape, set size
and finiteness are the library's one observation validator, :func:`simulators.validate_observation`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click
import numpy as np
import torch

import simulators
from simulators import Simulator
from simulators.files import HDF5, load_npy, read_array, read_json


def read_observations(path: str | Path, simulator: Simulator, *, as_set: bool = False, key: str = "x") -> torch.Tensor:
    """Read one or several observations from a file.

    Formats (by extension): ``.csv`` — one observation per row, comma-separated, an optional header line;
    ``.npy`` — an array of shape ``obs_shape`` (one) or ``(B, *obs_shape)`` (several); ``.json`` — a list of
    numbers (one), a list of lists (several), or an object with key ``"x"`` holding either; ``.h5`` / ``.hdf5`` /
    ``.npz`` — the dataset / array ``key`` (default ``x``: a table ``zoo simulate`` wrote), ``(B, *obs_shape)``.

    Set-valued simulators (those with ``n_obs`` and ``element_shape``, e.g. ``arm`` with ``n_obs=1-50``) take sets
    of any size K in their ``n_obs`` range: an ``.npy`` array ``(K, *element_shape)`` is one set and
    ``(B, K, *element_shape)`` several; with ``as_set`` all rows of a ``.csv`` file (one element per row) form one
    set.

    Arguments:
        path: the file.
        simulator: the simulator whose ``obs_shape`` the observations must have.
        as_set: read all rows of a CSV file as the elements of one set (set-valued simulators only).
        key: the dataset / array of an HDF5 or NPZ file.

    Returns:
        observations of shape ``(B, *obs_shape)``, or ``(B, K, *element_shape)`` for sets; float32.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: unreadable file, unknown extension, wrong number of values, a set size outside the simulator's
            range, NaN or inf (one line).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"observation file {path} does not exist")
    set_valued = simulators.is_set_valued(simulator)
    if path.suffix.lower() in (*HDF5, ".npz"):
        x = torch.as_tensor(read_array(path, key))
        return simulators.validate_observation(simulator, x, f"{path}:{key}")[0].to(torch.float32)
    if as_set and not set_valued:
        raise ValueError(
            f"--as-set needs a set-valued simulator, and {simulator.name} takes single observations; "
            "build one with a set size, e.g. --sim-option n_obs=1-50 --sim-option noise_std=0.05 for the arm"
        )
    if set_valued:
        return _read_sets(path, simulator, as_set=as_set)
    obs_shape = tuple(simulator.obs_shape)
    size = math.prod(obs_shape)
    expect = _expected(simulator)
    ext = path.suffix.lower()
    if ext == ".csv":
        rows = _read_csv(path)
        arr = _rows_to_array(rows, size, path, expect)
    elif ext == ".npy":
        arr = _load_npy(path, expect)
        if tuple(arr.shape) == obs_shape:
            arr = arr[None]
        elif tuple(arr.shape[1:]) != obs_shape:
            raise ValueError(f"{path} has shape {tuple(arr.shape)}; expected {expect} or (n, {_fmt(obs_shape)})")
    elif ext == ".json":
        data = read_json(path)
        if isinstance(data, dict):
            if "x" not in data:
                raise ValueError(f"{path} is a JSON object without key 'x'; expected a list of {expect} numbers")
            data = data["x"]
        if not isinstance(data, list) or not data:
            raise ValueError(f"{path} must hold a non-empty list of numbers or of lists; expected {expect} values")
        rows = data if isinstance(data[0], list) else [data]
        if len(obs_shape) > 1:
            rows = [np.asarray(r, dtype=object).reshape(-1).tolist() for r in rows]
        arr = _rows_to_array(rows, size, path, expect)
    else:
        raise ValueError(
            f"unknown observation file type {path.suffix!r} for {path}; use .csv, .npy, .json, .h5 or .npz"
        )
    x = torch.as_tensor(np.asarray(arr, dtype=np.float64).reshape(-1, *obs_shape))
    return simulators.validate_observation(simulator, x, str(path))[0].to(torch.float32)


def _read_sets(path: Path, simulator: Simulator, *, as_set: bool) -> torch.Tensor:
    """Sets of a set-valued simulator from ``path``: returns (B, K, *element_shape)."""
    el = tuple(simulator.element_shape)
    size = math.prod(el)
    expect = f"{size} values per set element (shape {el}) for simulator {simulator.name}"
    ext = path.suffix.lower()
    if ext == ".csv":
        if not as_set:
            raise ValueError(
                f"{path}: {simulator.name} observes sets; pass --as-set to read all rows of the CSV as one set "
                f"(one element of {size} values per row), or give an .npy array of shape (K, {_fmt(el)})"
            )
        arr = _rows_to_array(_read_csv(path), size, path, expect).reshape(1, -1, *el)
    elif ext == ".npy":
        arr = _load_npy(path, f"sets of shape (K, {_fmt(el)})")
        if arr.ndim == len(el) + 1 and tuple(arr.shape[1:]) == el:
            arr = arr[None]
        elif arr.ndim != len(el) + 2 or tuple(arr.shape[2:]) != el:
            raise ValueError(
                f"{path} has shape {tuple(arr.shape)}; expected one set (K, {_fmt(el)}) or several "
                f"(n, K, {_fmt(el)}) for simulator {simulator.name}"
            )
    else:
        raise ValueError(
            f"set observations of {simulator.name} are read from .npy (or .csv with --as-set), not {path.suffix!r}"
        )
    x = torch.as_tensor(np.asarray(arr, dtype=np.float64))
    return simulators.validate_observation(simulator, x, str(path))[0].to(torch.float32)  # K in the n_obs range


def read_truth(path: str | Path, simulator: Simulator, n: int, *, key: str = "theta") -> torch.Tensor:
    """The true parameters of ``n`` observations from a file (``--truth``): an HDF5 / NPZ dataset ``key`` (default
    ``theta``), an ``.npy`` array or CSV columns named by the parameter names; shape (n, D)."""
    d = len(simulator.param_names)
    key = ",".join(simulator.param_names) if Path(path).suffix.lower() == ".csv" and key == "theta" else key
    values = read_array(path, key)
    theta = torch.as_tensor(values, dtype=torch.float32).reshape(-1, d) if d and values.size % d == 0 else None
    if theta is None or len(theta) != n:
        rows = f"{values.size} values, not" if theta is None else len(theta)
        raise ValueError(
            f"--truth {path} holds {rows} parameter vectors of {d} values; expected {n} (one per observation)"
        )
    simulators.check_support(simulator.prior, theta, "--truth") if getattr(simulator, "available", True) else None
    return theta


def parse_theta(text: str, simulator: Simulator) -> torch.Tensor:
    """Parse ``--theta 0,0.3,-0.2,0.4`` (several parameter vectors separated by ``;``) into shape (B, D)."""
    D = len(simulator.param_names)
    rows = []
    for part in text.split(";"):
        vals = [v.strip() for v in part.split(",") if v.strip()]
        if len(vals) != D:
            raise ValueError(
                f"--theta needs {D} comma-separated values ({', '.join(simulator.param_names)}), got {len(vals)}"
            )
        row = []
        for i, v in enumerate(vals):
            try:
                row.append(float(v))
            except ValueError:
                raise ValueError(f"--theta value {i} ({simulator.param_names[i]}) is {v!r}, not a number") from None
        rows.append(row)
    theta = torch.as_tensor(np.asarray(rows, dtype=np.float64))
    simulators.check_finite(theta, "--theta")
    return theta.to(torch.float32)


def _load_npy(path: Path, expect: str) -> np.ndarray:
    """A numeric .npy array, never unpickled; ``expect`` says what it should hold (for the error message)."""
    return load_npy(path, expect)


def _read_csv(path: Path) -> list[list[str]]:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read {path} as a CSV text file ({_short(e)})") from e
    rows = [[c.strip() for c in line.split(",")] for line in text.splitlines() if line.strip()]
    if rows and not _is_number(rows[0][0]):  # a header line
        rows = rows[1:]
    if not rows:
        raise ValueError(f"{path} holds no observation rows")
    return rows


def _rows_to_array(rows: list, size: int, path: Path, expect: str) -> np.ndarray:
    out = np.empty((len(rows), size))
    for r, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != size:
            n = len(row) if isinstance(row, list) else 1
            raise ValueError(f"{path} row {r} has {n} values; expected {expect}")
        for c, v in enumerate(row):
            try:
                if isinstance(v, bool):  # JSON true is not the number 1
                    raise TypeError
                out[r, c] = float(v)
            except (TypeError, ValueError, OverflowError):
                raise ValueError(f"{path} row {r} value {c} is {v!r}, not a number; expected {expect}") from None
    return out


def _expected(simulator: Simulator) -> str:
    obs_shape = tuple(simulator.obs_shape)
    names = getattr(simulator, "observation_names", None)
    if len(obs_shape) == 1 and names:
        return f"{obs_shape[0]} values ({', '.join(names)}) for simulator {simulator.name}"
    return f"{math.prod(obs_shape)} values (shape {obs_shape}) for simulator {simulator.name}"


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _fmt(shape: tuple[int, ...]) -> str:
    return ", ".join(str(s) for s in shape)


def _short(e: Exception) -> str:
    return str(e).splitlines()[0] if str(e) else type(e).__name__


def check_sources(o: dict[str, Any]) -> None:
    """Usage errors of ``zoo infer``'s observation options (before anything is loaded)."""
    if sum(o[k] is not None for k in ("obs_file", "theta", "test_index")) != 1:
        raise click.UsageError("give exactly one of --observation FILE, --theta VALUES, --test-index K")
    if o["as_set"] and o["obs_file"] is None:
        raise click.UsageError("--as-set applies to a CSV --observation file")
    if o["truth"] is not None and o["obs_file"] is None:
        raise click.UsageError("--truth goes with --observation (--theta and --test-index know their truth)")
    if o["estimator"] is None and o["name"] is None:
        raise click.UsageError("give --simulator NAME (or --estimator DIR)")
    for flag, key, default, file in (
        ("--x-key", "x_key", "x", "obs_file"),
        ("--theta-key", "theta_key", "theta", "truth"),
    ):
        path = o[file]
        if o[key] != default and (path is None or Path(path).suffix.lower() not in (*HDF5, ".npz")):
            raise click.UsageError(f"{flag} names a dataset of an HDF5 / NPZ file, and {path or 'none'} is not one")


def read_sources(o: dict[str, Any], simulator: Simulator) -> tuple[torch.Tensor | None, ...]:
    """``zoo infer``'s observations, parameters to simulate and true parameters, read and checked."""
    x_o = (
        None
        if o["obs_file"] is None
        else read_observations(o["obs_file"], simulator, as_set=o["as_set"], key=o["x_key"])
    )
    theta = None if o["theta"] is None else parse_theta(o["theta"], simulator)
    truth = None if o["truth"] is None else read_truth(o["truth"], simulator, len(x_o), key=o["theta_key"])
    return x_o, theta, truth
