"""The reliability diagram of a classifier (thesis fig. 5.x; Guo et al. 2017): observed frequency per bin of
predicted probability, against the diagonal of perfect calibration."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from inference.plots.style import POSTERIOR_COLOR, TRUTH_COLOR


def reliability_diagram(report: Any) -> Figure:
    """Bars of the observed frequency Q_i over each bin of predicted probability (width = the bin), the predicted
    probability P_i marked, the diagonal of perfect calibration, and the counts per bin below (log scale).

    Arguments:
        report: an :class:`inference.evaluation.classifier.ClassifierReport` (or its ``calibration``).
    """
    c = getattr(report, "calibration", report)
    name = getattr(report, "name", "")
    edges, filled = c.edges, c.counts > 0
    fig = Figure(figsize=(4.6, 5.0))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    widths = np.diff(edges)
    top.bar(edges[:-1][filled], c.observed[filled], width=widths[filled], align="edge", color=POSTERIOR_COLOR,
            alpha=0.7, edgecolor="white", label="observed frequency")  # fmt: skip
    top.plot(c.predicted[filled], c.observed[filled], "k.", ms=4, label="at the mean predicted probability")
    top.plot([0, 1], [0, 1], color=TRUTH_COLOR, ls="--", lw=1, label="perfect calibration")
    top.set_ylabel("fraction correct")
    top.set_title(f"{name}: ECE {100 * c.ece:.2f}%, MCE {100 * c.mce:.2f}%, error {100 * (1 - c.accuracy):.2f}%",
                  fontsize=8)  # fmt: skip
    top.legend(fontsize=7, loc="upper left")
    bottom.bar(edges[:-1][filled], c.counts[filled], width=widths[filled], align="edge", color="0.6")
    bottom.set_yscale("log")
    bottom.set_xlabel("predicted probability (all classes)")
    bottom.set_ylabel("count")
    fig.tight_layout()
    return fig


def class_fiber_grid(samples: Any, *, title: str = "class fibers: x = g^-1(z), z ~ N(mu_y, T^2 I)") -> Figure:
    """One row per class of decoded latent samples (a generative classifier's class fibers).

    Arguments:
        samples: images per class, an array (K, n, C, H, W) in [0, 1].
    """
    from inference.plots.fibers import _image

    s = np.asarray(samples)
    k, n = s.shape[:2]
    fig = Figure(figsize=(0.9 * n + 0.4, 0.9 * k + 0.4))
    axes = np.asarray(fig.subplots(k, n, squeeze=False))
    for r in range(k):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(_image(s[r, c]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(str(r), rotation=0, labelpad=8, fontsize=8)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    return fig


__all__ = ["class_fiber_grid", "reliability_diagram"]
