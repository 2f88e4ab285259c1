"""Plots of fiber samples: the fiber grid (Rousselot et al. 2026, figs. 5-6) and the fidelity / consistency plot."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure


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


def fidelity_consistency(
    rows: Sequence[dict[str, Any]],
    *,
    title: str = "fidelity vs consistency",
    fidelity: str = "fiber_loss",
    xlabel: str = "fiber loss (fidelity)",
    baseline: float | None = None,
) -> Figure:
    """The trade-off plot of Rousselot et al. (2026, fig. 4): fiber loss (fidelity) against color KL (consistency).

    Arguments:
        rows: dicts with ``method``, ``strength`` (gamma or lambda), the ``fidelity`` key and ``kl``; one line per
            method, marker size growing with the strength. Optional ``kl_floor``: drawn as a dotted horizontal line
            (the KL of exact fiber samples of the same size).
        title: the figure title.
        fidelity: the row key on the x axis (e.g. ``"decolorize"``: the loss under the exact map).
        xlabel: its axis label.
        baseline: the nearest neighbour's value on that axis, drawn as a dashed vertical line.
    """
    fig = Figure(figsize=(5.2, 3.8))
    ax = fig.subplots()
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for m in methods:
        pts = sorted((r for r in rows if r["method"] == m), key=lambda r: r["strength"])
        fl = [r[fidelity] for r in pts]
        kl = [r["kl"] for r in pts]
        (line,) = ax.plot(fl, kl, "-", label=m)
        s = np.linspace(20, 120, len(pts))
        ax.scatter(fl, kl, s=s, color=line.get_color(), zorder=3)
        for r, a, b in zip(pts, fl, kl):
            ax.annotate(f"{r['strength']:g}", (a, b), fontsize=6, xytext=(3, 3), textcoords="offset points")
    floors = [r["kl_floor"] for r in rows if "kl_floor" in r]
    if floors:
        ax.axhline(float(np.mean(floors)), color="0.5", ls=":", label="exact fiber samples (KL floor)")
    if baseline is not None:
        ax.axvline(baseline, color="0.3", ls="--", lw=0.8, label="nearest neighbour")
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("color KL to p(c0) (consistency)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
