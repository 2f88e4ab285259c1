"""Plots of posteriors: the corner plot and, for the arm, its posterior poses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from inference.plots.style import POSTERIOR_COLOR, PRIOR_COLOR, TRUTH_COLOR


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
