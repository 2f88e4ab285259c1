"""Plots of posteriors and diagnostics. The only module that imports matplotlib.

Every function takes arrays (or result objects) and returns a :class:`matplotlib.figure.Figure`; nothing is shown
and no global pyplot state is touched (figures are built with ``Figure()``, so no display backend is needed).
Save with ``fig.savefig(path)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

POSTERIOR_COLOR = "tab:blue"
PRIOR_COLOR = "0.6"
TRUTH_COLOR = "tab:red"


def corner(
    samples: Any,
    *,
    param_names: Sequence[str],
    prior: Any | None = None,
    truth: Any | None = None,
    bins: int = 40,
    max_points: int = 2000,
    title: str | None = None,
) -> Figure:
    """Pair (corner) plot of posterior draws, with the prior in grey and the true value marked.

    Arguments:
        samples: posterior draws of one observation, shape (n, D).
        param_names: the D parameter names.
        prior: prior draws for comparison, shape (m, D), drawn in grey.
        truth: the true parameters, shape (D,), marked in red.
        bins: histogram bins on the diagonal.
        max_points: at most this many points per scatter panel.
        title: figure title.

    Returns:
        the figure (D x D panels: marginal histograms on the diagonal, pairwise scatter below).
    """
    s = np.asarray(samples, dtype=float)
    D = s.shape[1]
    p = None if prior is None else np.asarray(prior, dtype=float)
    t = None if truth is None else np.asarray(truth, dtype=float).reshape(D)
    ref = s if p is None else np.concatenate((s, p))
    lo, hi = np.quantile(ref, 0.002, axis=0), np.quantile(ref, 0.998, axis=0)
    if t is not None:
        lo, hi = np.minimum(lo, t), np.maximum(hi, t)
    pad = 0.05 * (hi - lo + 1e-12)
    lo, hi = lo - pad, hi + pad
    size = 1.9 * D + 0.6
    fig = Figure(figsize=(size, size), layout="constrained")
    axes = np.asarray(fig.subplots(D, D, squeeze=False))
    for i in range(D):
        for j in range(D):
            ax = axes[i, j]
            if j > i:
                ax.set_axis_off()
                continue
            if i == j:
                edges = np.linspace(lo[i], hi[i], bins + 1)
                if p is not None:
                    ax.hist(p[:, i], bins=edges, density=True, color=PRIOR_COLOR, alpha=0.6, label="prior")
                ax.hist(s[:, i], bins=edges, density=True, color=POSTERIOR_COLOR, alpha=0.8, label="posterior")
                if t is not None:
                    ax.axvline(t[i], color=TRUTH_COLOR, lw=1.5, label="truth")
                ax.set_yticks([])
            else:
                if p is not None:
                    pp = p[: max_points // 2]
                    ax.scatter(pp[:, j], pp[:, i], s=2, color=PRIOR_COLOR, alpha=0.4, rasterized=True)
                ss = s[:max_points]
                ax.scatter(ss[:, j], ss[:, i], s=2, color=POSTERIOR_COLOR, alpha=0.5, rasterized=True)
                if t is not None:
                    ax.plot(t[j], t[i], marker="*", ms=11, color=TRUTH_COLOR, mec="white", mew=0.7)
                ax.set_ylim(lo[i], hi[i])
            ax.set_xlim(lo[j], hi[j])
            if i == D - 1:
                ax.set_xlabel(param_names[j])
            else:
                ax.set_xticklabels([])
            if j == 0 and i > 0:
                ax.set_ylabel(param_names[i])
            elif j > 0:
                ax.set_yticklabels([])
    axes[0, 0].legend(fontsize="small", loc="upper left", frameon=False)
    if title:
        fig.suptitle(title)
    return fig


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


def arm_poses(
    joints: Any,
    *,
    target: Any | None = None,
    truth_joints: Any | None = None,
    rail_axis: int = 0,
    max_poses: int = 300,
    title: str | None = None,
) -> Figure:
    """The arm drawn in its posterior poses (thesis figure 4.6 style).

    Arguments:
        joints: joint positions of posterior draws, shape (n, J, 2), in observation coordinates (the arm simulator's
            ``joints(theta)``); joint 0 sits on the rail.
        target: the observed end point, shape (2,), marked with a cross.
        truth_joints: the true pose, shape (J, 2), drawn in red.
        rail_axis: which observation coordinate runs along the rail (drawn vertically): 0 for the thesis variant,
            1 for the cumulative variant.
        max_poses: at most this many poses drawn.
        title: axes title.
    """
    j = np.asarray(joints, dtype=float)[:max_poses]
    v, h = rail_axis, 1 - rail_axis  # vertical = rail coordinate, horizontal = reach
    fig = Figure(figsize=(5, 5), layout="constrained")
    ax = fig.subplots()
    alpha = float(np.clip(8.0 / max(len(j), 1), 0.03, 0.6))
    ax.axvline(0, color="0.3", lw=3, alpha=0.4, zorder=0)  # the rail
    for pose in j:
        ax.plot(pose[:, h], pose[:, v], "-", color=POSTERIOR_COLOR, alpha=alpha, lw=1.2)
    ax.plot(j[:, 0, h], j[:, 0, v], "s", color=POSTERIOR_COLOR, ms=3, alpha=min(1.0, 3 * alpha))
    if truth_joints is not None:
        tj = np.asarray(truth_joints, dtype=float)
        ax.plot(tj[:, h], tj[:, v], "o-", color=TRUTH_COLOR, lw=2, ms=4, label="truth")
    if target is not None:
        t = np.asarray(target, dtype=float).reshape(2)
        ax.plot(t[h], t[v], "x", color="k", ms=12, mew=2.5, label="observed end point")
    ax.set_aspect("equal")
    ax.set_xlabel("reach")
    ax.set_ylabel("rail")
    if truth_joints is not None or target is not None:
        ax.legend(fontsize="small", loc="lower right", frameon=False)
    ax.set_title(title or "posterior poses")
    return fig


def result_figures(result: Any, simulator: Any | None = None, *, max_observations: int = 4) -> dict[str, Figure]:
    """The figures a person wants for a posterior result, by file stem.

    ``corner`` (per observation, up to ``max_observations``): posterior vs prior with the truth; ``arm`` for
    simulators with ``joints(theta)`` (the arm): posterior poses with the observed end point.

    Arguments:
        result: a :class:`~inference.results.PosteriorSamples`.
        simulator: the simulator (needed for the arm picture).
        max_observations: figures are made for the first observations only.
    """
    import torch

    figs: dict[str, Figure] = {}
    n = min(result.n_observations, max_observations)
    for i in range(n):
        suffix = "" if result.n_observations == 1 else f"_{i}"
        truth = None if result.theta_true is None else result.theta_true[i]
        figs[f"corner{suffix}"] = corner(
            result.flat(i),
            param_names=result.param_names,
            prior=result.prior_draws,
            truth=truth,
            title=f"{result.simulator} / {result.method}, observation {i}",
        )
        if simulator is not None and hasattr(simulator, "joints") and result.obs_shape == (2,):
            draws = torch.as_tensor(result.flat(i)[:300], dtype=torch.float32)
            tj = None if truth is None else simulator.joints(torch.as_tensor(truth, dtype=torch.float32)).numpy()
            rail_axis = 0 if getattr(simulator, "variant", "thesis") == "thesis" else 1
            figs[f"arm{suffix}"] = arm_poses(
                simulator.joints(draws).numpy(),
                target=result.observation[i],
                truth_joints=tj,
                rail_axis=rail_axis,
                title=f"arm posterior poses ({result.method}), observation {i}",
            )
    return figs


def calibration_figures(report: Any) -> dict[str, Figure]:
    """The figures of a calibration report: ``calibration`` curve and ``sbc`` rank histograms."""
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
    }


def save_figures(figs: dict[str, Figure], directory: Any, *, fmt: str = "png", dpi: int = 120) -> list[str]:
    """Save figures as ``directory/<name>.<fmt>`` (each to a temporary name, then renamed); returns the paths."""
    import os
    from pathlib import Path

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figs.items():
        path = d / f"{name}.{fmt}"
        tmp = d / f".{name}.partial.{fmt}"
        fig.savefig(tmp, dpi=dpi)
        os.replace(tmp, path)
        paths.append(str(path))
    return paths


# -- fibers ----------------------------------------------------------------------------------------------------
def _image(a: np.ndarray) -> np.ndarray:
    """(C, H, W) in [0, 1] -> what imshow takes: (H, W, 3) or (H, W)."""
    a = np.clip(np.asarray(a, dtype=float), 0, 1)
    return a[0] if a.shape[0] == 1 else np.moveaxis(a[:3], 0, -1)


def fiber_grid(fibers: Any, *, max_samples: int = 8, max_targets: int = 4) -> Figure:
    """The fiber grid of Rousselot et al. (2026, figs. 5-6): one row per target.

    Columns: the original, its nearest neighbour in the reference set and an augmented copy (where the result has
    them), then fiber samples ordered by fiber loss; the fiber loss is printed under every image but the original.

    Arguments:
        fibers: an :class:`inference.results.FiberSamples` with images in [0, 1].
        max_samples: fiber samples shown per target, evenly spread over the loss ordering (the best, the worst
            and those between).
        max_targets: rows shown at most.
    """
    n_t = min(fibers.n_targets, max_targets)
    extra = [("nearest neighbour", fibers.neighbour, "nearest_neighbour"), ("augmented", fibers.augmented, "augmented")]
    extra = [e for e in extra if e[1] is not None]
    n_all = fibers.samples.shape[0] * fibers.samples.shape[1]
    k = min(max_samples, n_all)
    cols = 1 + len(extra) + k
    fig = Figure(figsize=(1.3 * cols, 1.55 * n_t))
    axes = np.asarray(fig.subplots(n_t, cols, squeeze=False))
    for r in range(n_t):
        x, loss = fibers.ordered(r)
        pick = np.unique(np.linspace(0, len(loss) - 1, k).round().astype(int))
        panels = [(fibers.target[r], "original", None)]
        panels += [
            (img[r], name, fibers.baselines.get(key, np.full(fibers.n_targets, np.nan))[r]) for name, img, key in extra
        ]
        panels += [(x[i], f"sample {i + 1}", loss[i]) for i in pick]
        for c, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(panels):
                ax.set_axis_off()
                continue
            img, title, value = panels[c]
            ax.imshow(_image(img), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            if r == 0:
                ax.set_title(title, fontsize=7)
            if value is not None:
                ax.set_xlabel(f"{value:.3g}", fontsize=7)
    fig.suptitle(f"fibers of {fibers.subject} ({fibers.method}); fiber loss under each image", fontsize=8)
    fig.tight_layout()
    return fig


def fidelity_consistency(rows: Sequence[dict[str, Any]], *, title: str = "fidelity vs consistency") -> Figure:
    """The trade-off plot of Rousselot et al. (2026, fig. 4): fiber loss (fidelity) against color KL (consistency).

    Arguments:
        rows: dicts with ``method``, ``strength`` (gamma or lambda), ``fiber_loss`` and ``kl``; one line per method,
            marker size growing with the strength. Optional ``kl_floor``: drawn as a dotted horizontal line (the
            KL of exact fiber samples of the same size).
        title: the figure title.
    """
    fig = Figure(figsize=(5.2, 3.8))
    ax = fig.subplots()
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for m in methods:
        pts = sorted((r for r in rows if r["method"] == m), key=lambda r: r["strength"])
        fl = [r["fiber_loss"] for r in pts]
        kl = [r["kl"] for r in pts]
        (line,) = ax.plot(fl, kl, "-", label=m)
        s = np.linspace(20, 120, len(pts))
        ax.scatter(fl, kl, s=s, color=line.get_color(), zorder=3)
        for r, a, b in zip(pts, fl, kl):
            ax.annotate(f"{r['strength']:g}", (a, b), fontsize=6, xytext=(3, 3), textcoords="offset points")
    floors = [r["kl_floor"] for r in rows if "kl_floor" in r]
    if floors:
        ax.axhline(float(np.mean(floors)), color="0.5", ls=":", label="exact fiber samples (KL floor)")
    ax.set_xscale("log")
    ax.set_xlabel("fiber loss (fidelity)")
    ax.set_ylabel("color KL to p(c0) (consistency)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
