"""The outcome of a simulation-based calibration run and its file: :class:`CalibrationReport`.

``calibration.nc`` is a posterior file (:mod:`inference.results.posterior`: the draws of every test case with its
truth) plus a ``calibration`` group: inlier fractions per level and parameter, calibration errors, SBC ranks and
p-values, HPD coverage, RMSEs; scalars as group attributes. Its ``zoo_format`` is ``"zoo.calibration"``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inference.results import netcdf
from inference.results.netcdf import Group, ResultFile
from inference.results.posterior import PosteriorSamples

_SCALARS = (
    "error",
    "resimulation_error_mean",
    "resimulation_error_median",
    "rmse_mean",
    "rmse_map",
    "n_map",
    "seconds",
    "band_per_parameter",
    "band",
    "tarp_error",
)


@dataclass
class CalibrationReport(ResultFile):
    """The outcome of a simulation-based calibration run (see :func:`inference.evaluation.calibration.calibrate`).

    Attributes:
        result: the posterior draws for all N test cases (observation dimension = test case), with the truths.
        levels: confidence levels alpha, shape (L,).
        inlier: inlier fraction of the central alpha-intervals, shape (L, D).
        error_per_parameter: marginal calibration error per parameter, shape (D,).
        error: overall marginal calibration error (pooled over parameters).
        sbc_ranks: SBC ranks, shape (N, D).
        sbc_pvalues: chi-square p-values of rank uniformity, shape (D,).
        hpd_coverage: expected coverage of HPD regions per level, shape (L,), or ``None`` without densities.
        resimulation_error_mean / resimulation_error_median: over re-simulated posterior draws and cases.
        rmse_mean / rmse_mean_per_parameter: RMSE of the posterior mean.
        rmse_map / rmse_map_per_parameter: RMSE of the mean-shift MAP on the first ``n_map`` cases (NaN if 0).
        n_map: number of cases with a MAP estimate.
        seconds: wall time of the posterior run and the diagnostics.
        band_per_parameter / band: the calibration error an exact posterior stays below in 95% of runs with this many
            cases (:func:`inference.evaluation.coverage.calibration_band`), per parameter and pooled.
        tarp_ecp: TARP expected coverage per level, shape (L,) (:func:`inference.evaluation.coverage.tarp`).
        tarp_error: its largest deviation from the diagonal.
        c2st: C2ST accuracy against the simulator's reference posterior of the first cases, shape (K,), or ``None``.
    """

    result: PosteriorSamples
    levels: np.ndarray
    inlier: np.ndarray
    error_per_parameter: np.ndarray
    error: float
    sbc_ranks: np.ndarray
    sbc_pvalues: np.ndarray
    hpd_coverage: np.ndarray | None
    resimulation_error_mean: float
    resimulation_error_median: float
    rmse_mean: float
    rmse_mean_per_parameter: np.ndarray
    rmse_map: float
    rmse_map_per_parameter: np.ndarray
    n_map: int = 0
    seconds: float = float("nan")
    band_per_parameter: float = float("nan")
    band: float = float("nan")
    tarp_ecp: np.ndarray | None = None
    tarp_error: float = float("nan")
    c2st: np.ndarray | None = None

    def headline(self) -> str:
        """One line: the pooled error, the worst parameter against the exact posterior's band, TARP and C2ST; says
        whether the posterior is too narrow or too wide where it is outside the band."""
        names = self.result.param_names
        worst = int(np.argmax(self.error_per_parameter))
        width = float((self.inlier[:, worst] - self.levels).mean())  # > 0: intervals too wide
        err = self.error_per_parameter[worst]
        verdict = "within the exact posterior's band"
        if err > self.band_per_parameter:
            verdict = f"MISCALIBRATED: too {'wide' if width > 0 else 'narrow'} (an exact posterior: < "
            verdict += f"{100 * self.band_per_parameter:.2f}%)"
        line = (
            f"calibration error {100 * self.error:.2f}% (band {100 * self.band:.2f}%); worst parameter "
            f"{names[worst]} {100 * err:.2f}%, {verdict}; TARP max deviation {self.tarp_error:.3f}"
        )
        if self.c2st is not None:
            line += f"; C2ST {float(np.mean(self.c2st)):.3f} on {len(self.c2st)} cases (0.5 = exact)"
        return line

    def table(self) -> str:
        """A plain-text table: one row per parameter plus an overall row."""
        r = self.result
        with_map = bool(np.isfinite(self.rmse_map_per_parameter).any())  # computed only with n_map > 0
        head = f"{'parameter':<12} {'calib. err':>10} {'band':>7} {'SBC p':>9} {'RMSE mean':>10}"
        head += f" {'RMSE MAP':>9}" if with_map else ""
        rows = [head, "-" * len(head)]
        for i, p in enumerate(r.param_names):
            flag = " *" if self.error_per_parameter[i] > self.band_per_parameter else ""
            map_cell = f" {self.rmse_map_per_parameter[i]:>9.4f}" if with_map else ""
            rows.append(
                f"{p:<12} {100 * self.error_per_parameter[i]:>9.2f}% {100 * self.band_per_parameter:>6.2f}% "
                f"{self.sbc_pvalues[i]:>9.3g} {self.rmse_mean_per_parameter[i]:>10.4f}{map_cell}{flag}"
            )
        rows.append(
            f"{'all':<12} {100 * self.error:>9.2f}% {100 * self.band:>6.2f}% {self.sbc_pvalues.min():>9.3g} "
            f"{self.rmse_mean:>10.4f}" + (f" {self.rmse_map:>9.4f}" if with_map else "")
        )
        cov = [f"TARP max |ECP - alpha| {self.tarp_error:.3f}"]
        if self.hpd_coverage is not None:
            cov.append(f"HPD coverage max |cov - alpha| {float(np.abs(self.hpd_coverage - self.levels).max()):.3f}")
        rows.append("; ".join(cov) + " (band: an exact posterior's 95% bound at this many cases; * outside it)")
        n = r.draws.shape[0] * r.draws.shape[1]
        rows.append(
            f"re-simulation error: mean {self.resimulation_error_mean:.4g}, median "
            f"{self.resimulation_error_median:.4g} ({r.n_observations} test cases, {n} draws each, "
            f"method {r.method}, budget {r.budget})"
        )
        return "\n".join(rows)

    def layout(self) -> tuple[dict[str, Any], dict[str, Group]]:
        """The posterior file layout of :attr:`result` plus a ``calibration`` group with the diagnostics."""
        attrs, groups = self.result.layout()
        data = {
            "inlier_fraction": (("level", "parameter"), self.inlier),
            "calibration_error": (("parameter",), self.error_per_parameter),
            "sbc_rank": (("observation", "parameter"), self.sbc_ranks),
            "sbc_pvalue": (("parameter",), self.sbc_pvalues),
            "rmse_mean": (("parameter",), self.rmse_mean_per_parameter),
            "rmse_map": (("parameter",), self.rmse_map_per_parameter),
        }
        if self.hpd_coverage is not None:
            data["hpd_coverage"] = (("level",), self.hpd_coverage)
        if self.tarp_ecp is not None:
            data["tarp_ecp"] = (("level",), self.tarp_ecp)
        if self.c2st is not None:
            data["c2st"] = (("c2st_case",), self.c2st)
        coords = {
            "level": self.levels,
            "parameter": list(self.result.param_names),
            "observation": np.arange(self.result.n_observations),
        }
        scalars = {f"{k}_overall" if k in ("error", "rmse_mean", "rmse_map") else k: getattr(self, k) for k in _SCALARS}
        groups["calibration"] = Group(data, coords, scalars)
        # arviz 1.x's convention for SBC: PIT values in a prior_sbc group with sample dims (chain, draw), one draw per
        # test case, read by arviz_plots.plot_ecdf_pit(dt, group="prior_sbc")
        n = int(self.result.draws.shape[0] * self.result.draws.shape[1])
        pit = (np.asarray(self.sbc_ranks, dtype=float) + 0.5) / (n + 1)
        groups["prior_sbc"] = Group(
            {p: (("chain", "draw"), pit[None, :, i]) for i, p in enumerate(self.result.param_names)},
            {"chain": [0], "draw": coords["observation"]},
            {"pit": f"(SBC rank + 0.5) / (n + 1), n = {n} posterior draws per test case"},
        )
        return {**attrs, "zoo_format": netcdf.CALIBRATION}, groups

    def save_table(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the table as Markdown (``calibration.md``) atomically; refuses to overwrite unless asked."""
        r = self.result
        return netcdf.write_text(
            path, f"# Calibration: {r.simulator} / {r.method}\n\n```\n{self.table()}\n```\n", overwrite=overwrite
        )

    @classmethod
    def from_layout(cls, attrs: dict[str, Any], groups: dict[str, Group]) -> CalibrationReport:
        """Rebuild from the plain data of a file (:func:`inference.results.netcdf.read`)."""
        g = groups["calibration"]
        v, a = {k: arr for k, (_, arr) in g.variables.items()}, g.attrs
        return cls(
            result=PosteriorSamples.from_layout(attrs, groups),
            levels=g.coords["level"],
            inlier=v["inlier_fraction"],
            error_per_parameter=v["calibration_error"],
            error=float(a["error_overall"]),
            sbc_ranks=v["sbc_rank"],
            sbc_pvalues=v["sbc_pvalue"],
            hpd_coverage=v.get("hpd_coverage"),
            resimulation_error_mean=float(a["resimulation_error_mean"]),
            resimulation_error_median=float(a["resimulation_error_median"]),
            rmse_mean=float(a["rmse_mean_overall"]),
            rmse_mean_per_parameter=v["rmse_mean"],
            rmse_map=float(a["rmse_map_overall"]),
            rmse_map_per_parameter=v["rmse_map"],
            n_map=int(a["n_map"]),
            seconds=float(a["seconds"]),
            band_per_parameter=float(a.get("band_per_parameter", float("nan"))),
            band=float(a.get("band", float("nan"))),
            tarp_ecp=v.get("tarp_ecp"),
            tarp_error=float(a.get("tarp_error", float("nan"))),
            c2st=v.get("c2st"),
        )


def read_calibration(path: str | os.PathLike) -> CalibrationReport:
    """Read a ``calibration.nc`` written by :meth:`CalibrationReport.save`.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if it is not a zoo calibration file.
    """
    attrs, groups = netcdf.read(path, (netcdf.CALIBRATION,), kind="calibration")
    if "calibration" not in groups:
        raise ValueError(f"{path} is not a zoo calibration file (no calibration group)")
    try:
        return CalibrationReport.from_layout(attrs, groups)
    except (KeyError, ValueError, TypeError) as e:
        raise ValueError(f"{path} is a damaged zoo calibration file ({type(e).__name__}: {e})") from None
