"""Result files: NetCDF4 (= HDF5) with ArviZ groups, written atomically. The only module touching xarray / arviz.

A result object (:class:`~inference.results.PosteriorSamples`, :class:`~inference.results.CalibrationReport`,
:class:`~inference.results.FiberSamples`) describes itself as plain data: root attributes and groups, each group a
dict of variables ``name -> (dims, array)`` plus coordinates ``name -> values``. This module turns that into an
``xarray.DataTree`` and a file, and a file back into plain arrays, so that the result objects themselves never import
xarray. Files are written to a ``mkstemp`` name in the target folder and renamed (a reader never sees half a file).
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from simulators.files import parse_json
from simulators.writes import follow_umask, temporary

ENGINE = "h5netcdf"
FORMAT_VERSION = 1
POSTERIOR = "zoo.posterior"
CALIBRATION = "zoo.calibration"
FIBERS = "zoo.fibers"
OOD = "zoo.ood"

Variables = Mapping[str, tuple[tuple[str, ...], np.ndarray]]
"""A group's variables: ``name -> (dims, array)``."""


class Group:
    """One group of a result file: variables, coordinates and attributes (plain data, no xarray)."""

    def __init__(
        self,
        variables: Variables,
        coords: Mapping[str, Any] | None = None,
        attrs: Mapping[str, Any] | None = None,
    ) -> None:
        self.variables = dict(variables)
        self.coords = dict(coords or {})
        self.attrs = dict(attrs or {})


def to_datatree(attrs: Mapping[str, Any], groups: Mapping[str, Group]) -> Any:
    """The :class:`xarray.DataTree` of a result: root attributes ``attrs`` and one child per group."""
    import xarray as xr

    children = {f"/{name}": xr.Dataset(g.variables, coords=g.coords, attrs=g.attrs) for name, g in groups.items()}
    return xr.DataTree.from_dict({"/": xr.Dataset(attrs=dict(attrs)), **children})


def write(
    path: str | os.PathLike, attrs: Mapping[str, Any], groups: Mapping[str, Group], *, overwrite: bool = False
) -> Path:
    """Write a result as NetCDF4 (h5netcdf engine) to a temporary name in the target folder, then rename it.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is false.
    """
    return write_atomic(path, to_datatree(attrs, groups), overwrite=overwrite)


def write_atomic(path: str | os.PathLike, tree: Any, *, overwrite: bool = False) -> Path:
    """Write a DataTree as NetCDF4 (h5netcdf engine) to a temporary name, then rename it to ``path``."""
    return _atomic(path, lambda tmp: tree.to_netcdf(tmp, engine=ENGINE, mode="w"), overwrite=overwrite)


def write_streamed(
    path: str | os.PathLike,
    layout: Mapping[str, Any],
    first: Mapping[str, np.ndarray],
    n: int,
    chunk: int,
    fill: Any,
    *,
    overwrite: bool = False,
) -> Path:
    """Write a result of ``n`` observations whose data arrive in slices, with bounded memory: the file is laid out
    from ``layout`` (root ``attrs``; per group ``dims`` of each variable, ``attrs``, coordinate names) and the arrays
    of the first slice ``first`` (``group/variable``, ``group@coordinate``), every variable with an ``observation``
    axis sized ``n``, compressed (gzip 1, shuffle) and chunked by ``chunk`` observations; then
    ``fill(write)`` calls ``write(group, variable, start, stop, data)`` for each slice. Atomic like :func:`write`."""
    import h5netcdf

    def write_to(tmp: str) -> None:
        with h5netcdf.File(tmp, "w") as f:
            f.attrs.update(layout["attrs"])
            for name, g in layout["groups"].items():
                grp = f.create_group(name)
                sizes: dict[str, int] = {}
                for var, dims in g["dims"].items():
                    sizes.update(
                        (d, n if d == "observation" else s) for d, s in zip(dims, first[f"{name}/{var}"].shape)
                    )
                grp.dimensions = sizes
                for d in sizes:
                    values = np.arange(n) if d == "observation" else first.get(f"{name}@{d}")
                    if values is not None:
                        _variable(grp, d, (d,), values, None)
                for var, dims in g["dims"].items():
                    data = first[f"{name}/{var}"]
                    chunks = tuple(min(chunk, n) if d == "observation" else sizes[d] for d in dims)
                    _variable(grp, var, tuple(dims), None if "observation" in dims else data, chunks, data.dtype)
                grp.attrs.update(g["attrs"])

            def write(group: str, var: str, start: int, stop: int, data: np.ndarray) -> None:
                dims = layout["groups"][group]["dims"][var]
                if "observation" in dims:
                    index = [slice(None)] * len(dims)
                    index[dims.index("observation")] = slice(start, stop)
                    f[group][var][tuple(index)] = data

            fill(write)

    return _atomic(path, write_to, overwrite=overwrite)


def _variable(grp: Any, name: str, dims: tuple[str, ...], data: Any, chunks: Any, dtype: Any = None) -> Any:
    """A variable of an h5netcdf group: strings as variable-length text, numbers compressed when chunked."""
    arr = None if data is None else np.asarray(data)
    dtype = dtype if arr is None else arr.dtype
    if np.dtype(dtype).kind == "U":
        import h5py

        text = None if arr is None else arr.astype(object)
        return grp.create_variable(name, dims, dtype=h5py.string_dtype(), data=text)
    extra = {"chunks": chunks, "compression": "gzip", "compression_opts": 1, "shuffle": True} if chunks else {}
    return grp.create_variable(name, dims, dtype=dtype, data=arr, **extra)


def write_text(path: str | os.PathLike, text: str, *, overwrite: bool = False) -> Path:
    """Write a text file beside a result (e.g. ``calibration.md``) through a ``mkstemp`` temporary, then rename."""
    return _atomic(path, lambda tmp: Path(tmp).write_text(text), overwrite=overwrite)


def _atomic(path: str | os.PathLike, write_to: Any, *, overwrite: bool) -> Path:
    """``write_to(tmp)`` into a fresh ``mkstemp`` file beside ``path`` (never a predictable name), then rename."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass --overwrite to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temporary(path)
    os.close(fd)
    try:
        write_to(tmp)
        follow_umask(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


class ResultFile:
    """What every result object shares: its :meth:`layout` (root attributes and groups) makes the tree and the file."""

    def layout(self) -> tuple[dict[str, Any], dict[str, Group]]:  # pragma: no cover - implemented by each result
        raise NotImplementedError

    def to_datatree(self) -> Any:
        """The ArviZ-layout :class:`xarray.DataTree` of this result."""
        return to_datatree(*self.layout())

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the file atomically (a ``mkstemp`` name in the same folder, then ``os.replace``).

        Raises:
            FileExistsError: if ``path`` exists and ``overwrite`` is false.
        """
        return write(path, *self.layout(), overwrite=overwrite)


def read(
    path: str | os.PathLike, formats: tuple[str, ...], *, kind: str, select: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, Group]]:
    """Read a result file into plain data: root attributes and groups of NumPy arrays.

    Arguments:
        path: the file.
        formats: the ``zoo_format`` tags the caller reads (e.g. ``("zoo.posterior", "zoo.calibration")``).
        kind: what the caller reads, for messages (``"posterior"``, ``"fiber"``).
        select: positions to read along dimensions (``{"observation": [0, 5]}``); only those are read from disk.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a readable NetCDF4 file, or not of one of ``formats`` (one line).
    """
    import xarray as xr

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"result file {path} does not exist")
    failure = None
    with _quiet_cleanup():
        try:
            with xr.open_datatree(path, engine=ENGINE) as opened:
                if select:
                    pick = dict(select)
                    opened = opened.map_over_datasets(lambda ds: ds.isel({d: pick[d] for d in pick if d in ds.dims}))
                tree = opened.load()
        except Exception as e:  # h5netcdf / h5py raise OSError or their own types for damaged or foreign files
            failure = type(e).__name__
    if failure is not None:
        raise ValueError(f"{path} is not a readable NetCDF4 result file ({failure})")
    attrs = dict(tree.attrs)
    if attrs.get("zoo_format") not in formats:
        raise ValueError(f"{path} is not a zoo {kind} file (no zoo_format={formats[0]!r} attribute)")
    groups = {}
    for name in tree.children:
        ds = tree[name].to_dataset()
        groups[name] = Group(
            {k: (tuple(v.dims), v.values) for k, v in ds.data_vars.items()},
            {k: v.values for k, v in ds.coords.items()},
            dict(ds.attrs),
        )
    return attrs, groups


@contextlib.contextmanager
def _quiet_cleanup() -> Iterator[None]:
    """Collect the half-opened file objects a failed open leaves behind, without the tracebacks their ``__del__``
    would print (h5netcdf's ``File.close`` on an object whose ``__init__`` failed on a damaged file)."""
    hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: None
    try:
        yield
        gc.collect()
    finally:
        sys.unraisablehook = hook


def to_inference_data(attrs: Mapping[str, Any], groups: Mapping[str, Group]) -> Any:
    """The result in ArviZ's own container: an ``arviz.InferenceData`` with arviz 0.x, the ``xarray.DataTree`` that
    arviz 1.x works on directly (``arviz.summary(dt)``, ``arviz_plots.plot_ecdf_pit(dt, group="prior_sbc")``)."""
    import arviz as az

    tree = to_datatree(attrs, groups)
    if not hasattr(az, "InferenceData"):  # arviz >= 1: DataTree is the container
        return tree
    return az.InferenceData(attrs=dict(tree.attrs), **{name: tree[name].to_dataset() for name in tree.children})


def attr_json(text: Any) -> Any:
    """A file attribute holding JSON; damage (invalid, or nested too deeply: a crafted file) is a ``ValueError``."""
    return parse_json(str(text), "an attribute of the result file")
