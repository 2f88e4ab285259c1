"""Result objects and their files: NetCDF4 (= HDF5) with ArviZ groups.

:class:`PosteriorSamples` (``posterior.nc``), :class:`CalibrationReport` (``calibration.nc``) and
:class:`FiberSamples` (``fibers.nc``) hold NumPy arrays shaped ``(chain, draw, ...)`` plus provenance; each writes
one file through :mod:`inference.results.netcdf`, the only module that touches xarray and arviz. See docs/results.md.
"""

from __future__ import annotations

import os
from typing import Any

from inference.results import netcdf
from inference.results.calibration import CalibrationReport, read_calibration
from inference.results.fibers import FiberSamples, read_fibers
from inference.results.netcdf import write_atomic
from inference.results.ood import OODScores, read_ood
from inference.results.posterior import PosteriorSamples, read_posterior

FORMAT = netcdf.POSTERIOR
CALIBRATION_FORMAT = netcdf.CALIBRATION
FIBER_FORMAT = netcdf.FIBERS
OOD_FORMAT = netcdf.OOD
FORMAT_VERSION = netcdf.FORMAT_VERSION


def read_result(path: str | os.PathLike) -> PosteriorSamples | CalibrationReport:
    """Read a zoo result file of either kind: a :class:`CalibrationReport` or a :class:`PosteriorSamples`."""
    attrs, groups = netcdf.read(path, (netcdf.POSTERIOR, netcdf.CALIBRATION), kind="posterior")
    kind = CalibrationReport if attrs["zoo_format"] == netcdf.CALIBRATION and "calibration" in groups else None
    try:
        return (kind or PosteriorSamples).from_layout(attrs, groups)
    except (KeyError, ValueError, TypeError) as e:
        raise ValueError(f"{path} is a damaged zoo result file ({type(e).__name__}: {e})") from None


def to_inference_data(result: PosteriorSamples | CalibrationReport | FiberSamples) -> Any:
    """The result as an ``arviz.InferenceData`` (arviz 0.2x), for ArviZ's summaries and plots."""
    return netcdf.to_inference_data(*result.layout())


__all__ = [
    "CALIBRATION_FORMAT",
    "FIBER_FORMAT",
    "FORMAT",
    "FORMAT_VERSION",
    "OOD_FORMAT",
    "OODScores",
    "CalibrationReport",
    "FiberSamples",
    "PosteriorSamples",
    "read_calibration",
    "read_fibers",
    "read_ood",
    "read_posterior",
    "read_result",
    "to_inference_data",
    "write_atomic",
]
