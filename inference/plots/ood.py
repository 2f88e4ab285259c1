"""Plots of OOD scores: the histogram of input against reference scores, and the most atypical inputs."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from inference.plots.fibers import _image
from inference.plots.style import POSTERIOR_COLOR, PRIOR_COLOR, TRUTH_COLOR


def score_histogram(result: Any, *, alpha: float = 0.01) -> Figure:
    """Reference (in-distribution) scores against the inputs' scores, with the two-sided thresholds at ``alpha``.

    Arguments:
        result: an :class:`inference.results.OODScores`.
        alpha: the test level whose thresholds are drawn (the reference scores' alpha/2 and 1 - alpha/2 quantiles).
    """
    ref, s = np.asarray(result.reference_score, float), np.asarray(result.score, float)
    finite = np.concatenate([ref, s[np.isfinite(s)]])
    lo, hi = np.quantile(finite, [0.0, 1.0])
    use_log = result.higher_is_ood and lo > 0 and hi / lo > 50
    bins = np.geomspace(lo, hi, 40) if use_log else np.linspace(lo, hi, 40)
    fig = Figure(figsize=(5.2, 3.4))
    ax = fig.subplots()
    ax.hist(ref, bins=bins, density=True, alpha=0.6, color=PRIOR_COLOR, label=f"reference ({ref.size})")
    ax.hist(s[np.isfinite(s)], bins=bins, density=True, alpha=0.6, color=POSTERIOR_COLOR, label=f"inputs ({s.size})")
    cuts = np.quantile(ref, [alpha / 2, 1 - alpha / 2]) if result.alternative == "two-sided" else []
    for i, c in enumerate(cuts):
        ax.axvline(c, color=TRUTH_COLOR, ls="--", lw=1, label=f"p = {alpha:g} thresholds" if i == 0 else None)
    if use_log:
        ax.set_xscale("log")
    way = "higher = less typical" if result.higher_is_ood else "lower = less typical"
    ax.set_xlabel(f"{result.method} score ({way})")
    ax.set_ylabel("density")
    ax.set_title(f"{result.method} under {result.prior}: {result.kind}", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def atypical_grid(result: Any, *, k: int = 8) -> Figure:
    """The k most atypical inputs (lowest p-value), with their reconstructions below where the score has them;
    p-value and score under each. Images only (inputs of shape (C, H, W))."""
    order = result.order()[:k]
    has_rec = result.reconstruction is not None
    rows = 2 if has_rec else 1
    fig = Figure(figsize=(1.35 * max(len(order), 2), 1.6 * rows + 0.3))
    axes = np.asarray(fig.subplots(rows, max(len(order), 2), squeeze=False))
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    for c, i in enumerate(order):
        ax = axes[0, c]
        ax.imshow(_image(result.inputs[i]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"#{i}", fontsize=7)
        ax.set_xlabel(f"p={result.p_value[i]:.2g}\n{result.score[i]:.3g}", fontsize=6)
        if has_rec:
            axes[1, c].imshow(_image(result.reconstruction[i]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    for c in range(len(order), axes.shape[1]):
        for r in range(rows):
            axes[r, c].set_axis_off()
    axes[0, 0].set_ylabel("input", fontsize=7)
    if has_rec:
        axes[1, 0].set_ylabel("reconstruction", fontsize=7)
    fig.suptitle(f"most atypical inputs ({result.method}; p-value and score under each)", fontsize=8)
    fig.tight_layout()
    return fig


def ood_figures(result: Any, *, alpha: float = 0.01) -> dict[str, Figure]:
    """The figures of ``zoo ood``: ``ood_scores`` (histogram) and, for image inputs, ``ood_atypical``."""
    figs = {"ood_scores": score_histogram(result, alpha=alpha)}
    if result.inputs.ndim == 4 and result.inputs.shape[1] in (1, 3):
        figs["ood_atypical"] = atypical_grid(result)
    return figs


__all__ = ["atypical_grid", "ood_figures", "score_histogram"]
