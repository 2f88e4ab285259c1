"""Plots of calibration: the one-page report, coverage curves per parameter, SBC rank histograms."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from inference.plots.style import POSTERIOR_COLOR


def calibration_curve(
    levels: Any,
    inlier: Any,
    *,
    param_names: Sequence[str],
    n_cases: int | None = None,
    title: str | None = None,
) -> Figure:
    """Calibration curve: inlier fraction minus confidence level, against the level (thesis figure 4.10).

    A calibrated posterior stays at 0; positive = intervals too wide (underconfident), negative = too narrow
    (overconfident). With ``n_cases`` the grey band shows +-2 binomial standard errors sqrt(alpha (1 - alpha) / N):
    the noise floor of a perfectly calibrated posterior evaluated on N cases.

    Arguments:
        levels: confidence levels alpha, shape (L,).
        inlier: inlier fractions, shape (L, D).
        param_names: the D parameter names.
        n_cases: number of test cases N (for the noise band).
        title: axes title.
    """
    a = np.asarray(levels, dtype=float)
    inl = np.asarray(inlier, dtype=float).reshape(len(a), -1)
    fig = Figure(figsize=(5.5, 4), layout="constrained")
    ax = fig.subplots()
    if n_cases:
        band = 2 * np.sqrt(a * (1 - a) / n_cases)
        ax.fill_between(a, -band, band, color="0.85", label=f"±2 s.e. ({n_cases} cases)")
    ax.axhline(0, color="k", lw=0.8)
    for d, name in enumerate(param_names):
        ax.plot(a, inl[:, d] - a, lw=1.2, label=name)
    ax.plot(a, inl.mean(1) - a, color="k", lw=2, ls="--", label="all (pooled)")
    ax.set_xlabel("confidence level α")
    ax.set_ylabel("inlier fraction − α")
    ax.set_xlim(0, 1)
    ax.legend(fontsize="small", ncol=2, frameon=False)
    ax.set_title(title or "calibration (central marginal intervals)")
    return fig


def sbc_histogram(
    ranks: Any, *, n_samples: int, param_names: Sequence[str], bins: int = 20, pvalues: Any | None = None
) -> Figure:
    """SBC rank histograms, one panel per parameter, with the 99% band of a uniform histogram.

    Arguments:
        ranks: SBC ranks, shape (N, D), each in {0..n_samples}.
        n_samples: posterior draws per case.
        param_names: the D parameter names.
        bins: histogram bins.
        pvalues: uniformity p-values per parameter, shown in the titles.

    Reading it: flat = calibrated; U shape = too narrow; hump = too wide; slope = biased.
    """
    from scipy import stats

    r = np.asarray(ranks)
    N, D = r.shape
    bins = max(2, min(bins, n_samples + 1))
    edges = np.linspace(0, n_samples + 1, bins + 1)
    expected = N / bins
    lo, hi = stats.binom.ppf([0.005, 0.995], N, 1 / bins)
    fig = Figure(figsize=(2.6 * D + 0.4, 2.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, D))
    for d in range(D):
        ax = axes[d]
        ax.axhspan(lo, hi, color="0.88")
        ax.axhline(expected, color="0.5", lw=0.8)
        ax.hist(r[:, d], bins=edges, color=POSTERIOR_COLOR, alpha=0.85)
        ax.set_xlabel("rank")
        title = param_names[d]
        if pvalues is not None:
            title += f" (p = {float(np.asarray(pvalues)[d]):.2g})"
        ax.set_title(title, fontsize="medium")
    axes[0].set_ylabel("test cases")
    return fig


def report_figure(report: Any) -> Figure:
    """One page a person can read: per parameter the calibration curve (inlier fraction - alpha, with the +-2
    binomial s.e. band of an exact posterior) and the SBC ECDF difference (with its 95% band); and the coverage of
    the whole posterior: pooled central intervals, HPD regions (with densities) and TARP, against the diagonal.

    Reading it: inside the grey bands = indistinguishable from exact at this many cases; below 0 / a U-shaped ECDF
    difference = too narrow (overconfident); above 0 / a hump = too wide; a slope = biased.
    """
    r = report.result
    a, inl = np.asarray(report.levels), np.asarray(report.inlier)
    n_cases, names, D = r.n_observations, r.param_names, r.dim
    n_draws = r.draws.shape[0] * r.draws.shape[1]
    fig = Figure(figsize=(3.0 * D + 3.4, 6.2), layout="constrained")
    grid = fig.add_gridspec(2, D + 1)
    band = 2 * np.sqrt(a * (1 - a) / n_cases)
    u = np.linspace(0, 1, 101)
    ecdf_band = 1.36 / np.sqrt(n_cases)  # 95% Kolmogorov-Smirnov band of an ECDF of N uniforms
    for d in range(D):
        ax = fig.add_subplot(grid[0, d])
        ax.fill_between(a, -band, band, color="0.85")
        ax.axhline(0, color="k", lw=0.8)
        ax.plot(a, inl[:, d] - a, color=POSTERIOR_COLOR, lw=1.5)
        flag = " *" if report.error_per_parameter[d] > report.band_per_parameter else ""
        ax.set_title(f"{names[d]}: {100 * report.error_per_parameter[d]:.2f}%{flag}", fontsize="medium")
        ax.set_xlabel("level α")
        ax = fig.add_subplot(grid[1, d])
        ranks = np.sort(np.asarray(report.sbc_ranks)[:, d] / (n_draws + 1))
        ax.fill_between(u, -ecdf_band, ecdf_band, color="0.85")
        ax.axhline(0, color="k", lw=0.8)
        ax.plot(u, np.searchsorted(ranks, u, side="right") / len(ranks) - u, color=POSTERIOR_COLOR, lw=1.5)
        ax.set_title(f"SBC p = {float(report.sbc_pvalues[d]):.2g}", fontsize="medium")
        ax.set_xlabel("fractional rank")
    fig.axes[0].set_ylabel("inlier fraction − α")
    fig.axes[1].set_ylabel("ECDF − uniform")
    ax = fig.add_subplot(grid[:, D])
    ax.plot([0, 1], [0, 1], color="k", lw=0.8)
    ax.plot(a, inl.mean(1), lw=1.5, label=f"central, pooled ({100 * report.error:.2f}%)")
    if report.hpd_coverage is not None:
        ax.plot(a, report.hpd_coverage, lw=1.5, label="HPD regions")
    if report.tarp_ecp is not None:
        ax.plot(a, report.tarp_ecp, lw=1.5, label=f"TARP (max dev. {report.tarp_error:.3f})")
    ax.set_xlabel("credibility level α")
    ax.set_ylabel("expected coverage")
    ax.legend(fontsize="small", frameon=False, loc="upper left")
    ax.set_title("coverage of the whole posterior", fontsize="medium")
    fig.suptitle(f"{r.simulator} / {r.method}, {n_cases} test cases x {n_draws} draws", fontsize="medium")
    return fig


def calibration_figures(report: Any) -> dict[str, Figure]:
    """The figures of a calibration report: the one-page ``report``, the ``calibration`` curve and ``sbc`` rank
    histograms."""
    r = report.result
    n = r.draws.shape[0] * r.draws.shape[1]
    return {
        "calibration": calibration_curve(
            report.levels,
            report.inlier,
            param_names=r.param_names,
            n_cases=r.n_observations,
            title=f"calibration: {r.simulator} / {r.method}, error {100 * report.error:.2f}%",
        ),
        "sbc": sbc_histogram(report.sbc_ranks, n_samples=n, param_names=r.param_names, pvalues=report.sbc_pvalues),
        "report": report_figure(report),
    }
