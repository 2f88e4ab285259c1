"""Coverage diagnostics beyond the marginal calibration curve: TARP, and the sampling band of the calibration error.

- :func:`tarp` — Tests of Accuracy with Random Points (Lemos et al. 2023): for each test case a random reference
  point theta_r; f_i is the fraction of posterior draws closer to theta_r than the truth is; the expected coverage
  probability ECP(alpha) = mean_i 1[f_i < alpha] equals alpha for every alpha iff the posterior is calibrated (a
  joint, not marginal, check: it sees correlations the marginal curves miss).
- :func:`calibration_band` — what an *exact* posterior scores: the calibration error of N cases is never 0, because
  the inlier fraction of N cases at level alpha is Binomial(N, alpha) / N. The band is the 95% quantile of that
  error, so a measured error inside it is indistinguishable from perfect calibration at this N.

Arrays in, arrays out (shapes as in :mod:`inference.evaluation.diagnostics`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from inference.evaluation.diagnostics import LEVELS, _samples_truth


class Tarp(NamedTuple):
    """TARP coverage: the levels alpha (L,), the expected coverage probability ECP(alpha) (L,), and its largest
    deviation from the diagonal, ``max |ECP - alpha|`` (0 for a calibrated posterior, up to sampling error)."""

    levels: np.ndarray
    ecp: np.ndarray
    error: float


def tarp(samples: Any, truth: Any, *, levels: Any = LEVELS, seed: int = 0) -> Tarp:
    """TARP expected coverage of posterior draws (n, N, D) for truths (N, D).

    Parameters are standardized by the truths' mean and standard deviation (the truths are prior draws), and each
    case's reference point is uniform in the box spanned by the standardized truths (the paper's choice of a
    reference distribution covering the prior's support).

    References:
        Lemos, Coogan, Hezaveh, Perreault-Levasseur, *Sampling-based accuracy testing of posterior estimators for
        general inference*, ICML 2023.
    """
    s, t = _samples_truth(samples, truth)
    mean, std = t.mean(0), t.std(0)
    std = np.where(std > 0, std, 1.0)
    s, t = (s - mean) / std, (t - mean) / std
    rng = np.random.default_rng(seed)
    ref = rng.uniform(t.min(0), t.max(0), size=t.shape)  # (N, D)
    d_samples = np.linalg.norm(s - ref[None], axis=-1)  # (n, N)
    d_truth = np.linalg.norm(t - ref, axis=-1)  # (N,)
    f = (d_samples < d_truth[None]).mean(0)  # (N,)
    levels = np.asarray(levels, dtype=float)
    ecp = (f[None, :] < levels[:, None]).mean(1)
    return Tarp(levels, ecp, float(np.abs(ecp - levels).max()))


def calibration_band(
    n_cases: int, *, n_params: int = 1, levels: Any = LEVELS, quantile: float = 0.95, runs: int = 2000, seed: int = 0
) -> float:
    """The calibration error an exact posterior stays below with probability ``quantile`` at ``n_cases`` cases.

    Simulated: for an exact posterior, the truths' central-interval memberships at nested levels come from one
    uniform rank per case and parameter, so the inlier fraction at alpha is the share of uniforms in
    ``[(1 - alpha) / 2, (1 + alpha) / 2]``; the error is the median over levels of |inlier fraction - alpha|, pooled
    over ``n_params`` independent parameters.
    """
    rng = np.random.default_rng(seed)
    levels = np.asarray(levels, dtype=float)
    m = n_cases * n_params
    centred = np.sort(np.abs(rng.random((runs, m)) - 0.5) * 2, axis=1)  # inside the alpha-interval iff < alpha
    inlier = np.stack([np.searchsorted(row, levels) for row in centred]) / m  # (runs, L)
    errors = np.median(np.abs(inlier - levels[None]), axis=1)
    return float(np.quantile(errors, quantile))
