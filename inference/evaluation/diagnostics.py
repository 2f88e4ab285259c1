"""Diagnostics of posterior quality: pure functions, arrays in, arrays out.

Shapes follow zoo's convention: posterior draws ``samples`` are ``(n, N, D)`` — n draws for each of N test cases
(sample dimension first) — and the true parameters ``truth`` are ``(N, D)``. Torch tensors are accepted and
converted to NumPy.

Contents (definition and source in each docstring):

- :func:`calibration_curve`, :func:`calibration_error` — marginal calibration error of the thesis (ch. 4);
- :func:`expected_coverage` — coverage of highest-density regions (needs densities);
- :func:`sbc_ranks`, :func:`sbc_uniformity` — simulation-based calibration (Talts et al. 2018);
- :func:`resimulation_error` — ||s(theta_hat) - x_o|| over posterior draws (thesis ch. 4);
- :func:`rmse`, :func:`map_estimate` — point-estimate errors (posterior mean, mean-shift MAP; thesis ch. 4);
- :func:`c2st`, :func:`mmd` — two-sample scores against reference posterior samples (Lopez-Paz & Oquab 2017;
  Gretton et al. 2012).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from scipy import stats
from scipy.spatial.distance import cdist

LEVELS = np.arange(1, 101) / 101
"""Confidence levels alpha = k / 101, k = 1..100 (thesis code: ``linspace(0, 1, 101, endpoint=False)[1:]``)."""


class Calibration(NamedTuple):
    """Marginal calibration of posterior samples against true values.

    Attributes:
        levels: the confidence levels alpha, shape (L,).
        inlier: fraction of test cases whose truth lies inside the central alpha-interval, shape (L, D).
        error_per_parameter: median over alpha of |inlier - alpha|, shape (D,).
        error: the same for the inlier fraction pooled over all parameters (a scalar).
    """

    levels: np.ndarray
    inlier: np.ndarray
    error_per_parameter: np.ndarray
    error: float


def calibration_curve(samples: Any, truth: Any, levels: Any = LEVELS) -> tuple[np.ndarray, np.ndarray]:
    """Inlier fraction of true values in central marginal credible intervals, per level and parameter.

    For each level alpha and parameter d, the central alpha-interval of test case i is
    ``[q_i((1 - alpha) / 2), q_i((1 + alpha) / 2)]`` with ``q_i`` the empirical quantile function of the n draws of
    parameter d; the inlier fraction is the fraction of the N cases whose truth lies strictly inside. A calibrated
    posterior has inlier fraction = alpha; above the diagonal = too wide (underconfident), below = too narrow
    (overconfident).

    Arguments:
        samples: posterior draws, shape (n, N, D).
        truth: true parameters, shape (N, D).
        levels: confidence levels in (0, 1), shape (L,).

    Returns:
        ``(levels, inlier)`` with inlier of shape (L, D).

    References:
        Ardizzone, PhD thesis, section 4.2 (calibration error, figure 4.10); Ardizzone et al., *Analyzing inverse
        problems with invertible neural networks*, ICLR 2019.
    """
    s, t = _samples_truth(samples, truth)
    levels = np.asarray(levels, dtype=float)
    q = np.concatenate(((1 - levels) / 2, (1 + levels) / 2))
    bounds = np.quantile(s, q, axis=0)  # (2L, N, D)
    lo, hi = bounds[: len(levels)], bounds[len(levels) :]
    inside = (lo < t) & (t < hi)  # (L, N, D)
    return levels, inside.mean(1)


def calibration_error(samples: Any, truth: Any, levels: Any = LEVELS) -> Calibration:
    """Marginal calibration error: the median over alpha of |inlier fraction - alpha|.

    Definition (thesis, section 4.2): for alpha = k/101, k = 1..100, the inlier fraction is the fraction of test
    cases whose true value lies in the central alpha-interval of the 1-D marginal posterior (see
    :func:`calibration_curve`); the calibration error is ``median_alpha |inlier(alpha) - alpha|``. Reported per
    parameter, and overall with the inlier fraction pooled over all (case, parameter) pairs.

    Arguments:
        samples: posterior draws, shape (n, N, D).
        truth: true parameters, shape (N, D).
        levels: confidence levels (default: k/101).

    Returns:
        a :class:`Calibration` (levels, inlier curve, per-parameter error, overall error).

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> mu = rng.normal(size=(2000, 1))  # exact posterior N(mu, 1) with truth ~ N(mu, 1)
        >>> truth = mu + rng.normal(size=mu.shape)
        >>> samples = mu + rng.normal(size=(500, 2000, 1))
        >>> calibration_error(samples, truth).error < 0.03
        True

    References:
        Ardizzone, PhD thesis, section 4.2.
    """
    levels, inlier = calibration_curve(samples, truth, levels)
    per = np.median(np.abs(inlier - levels[:, None]), axis=0)
    overall = float(np.median(np.abs(inlier.mean(1) - levels)))
    return Calibration(levels, inlier, per, overall)


def expected_coverage(log_prob_samples: Any, log_prob_truth: Any, levels: Any = LEVELS) -> np.ndarray:
    """Expected coverage of highest-posterior-density (HPD) regions.

    The truth of case i lies in the alpha-HPD region iff the fraction of posterior draws with a higher density than
    the truth is below alpha. The expected coverage at alpha is the fraction of cases for which it does; it equals
    alpha for a calibrated posterior (above: too wide, below: too narrow).

    Arguments:
        log_prob_samples: log q(theta_j | x_i) of the n draws of each case, shape (n, N).
        log_prob_truth: log q(theta*_i | x_i), shape (N,).
        levels: confidence levels, shape (L,).

    Returns:
        coverage per level, shape (L,).

    References:
        Hermans et al., *A trust crisis in simulation-based inference?*, TMLR 2022 (expected coverage).
    """
    lp = np.asarray(log_prob_samples, dtype=float)
    lt = np.asarray(log_prob_truth, dtype=float)
    frac_above = (lp > lt[None]).mean(0)  # (N,)
    levels = np.asarray(levels, dtype=float)
    return (frac_above[None, :] < levels[:, None]).mean(1)


def sbc_ranks(samples: Any, truth: Any) -> np.ndarray:
    """Simulation-based calibration ranks: the number of posterior draws below the truth.

    If theta* ~ p(theta), x ~ p(x | theta*) and the n draws are independent draws of the exact posterior, each
    rank is uniform on {0, ..., n}.

    Arguments:
        samples: posterior draws, shape (n, N, D).
        truth: true parameters, shape (N, D).

    Returns:
        integer ranks, shape (N, D).

    References:
        Talts et al., *Validating Bayesian inference algorithms with simulation-based calibration*, 2018.
    """
    s, t = _samples_truth(samples, truth)
    return (s < t[None]).sum(0)


def sbc_uniformity(ranks: Any, n_samples: int, bins: int | None = None) -> np.ndarray:
    """Chi-square test of uniform SBC ranks, per parameter.

    Ranks in {0..n} are grouped into ``bins`` bins of (nearly) equal width; the expected count of each bin is
    N x (its number of rank values) / (n + 1), exact for a discrete uniform.

    Arguments:
        ranks: shape (N, D), from :func:`sbc_ranks`.
        n_samples: the number n of posterior draws per case.
        bins: number of bins (default: min(20, n + 1, N // 5), at least 2), so expected counts are >= ~5.

    Returns:
        p-values, shape (D,). Small values (e.g. < 1e-3) reject uniformity: the posterior is miscalibrated.
    """
    r = np.asarray(ranks)
    if r.ndim == 1:
        r = r[:, None]
    N = r.shape[0]
    B = bins or max(2, min(20, n_samples + 1, N // 5))
    edges = np.linspace(0, n_samples + 1, B + 1).round().astype(int)
    widths = np.diff(edges)
    expected = N * widths / (n_samples + 1)
    pvals = []
    for d in range(r.shape[1]):
        counts = np.histogram(r[:, d], bins=edges)[0]
        pvals.append(stats.chisquare(counts, expected).pvalue)
    return np.asarray(pvals)


def resimulation_error(x_resim: Any, x_o: Any) -> np.ndarray:
    """Re-simulation error ||s(theta_hat) - x_o||_2 of each posterior draw.

    Arguments:
        x_resim: simulations of posterior draws, shape (n, N, *obs_shape).
        x_o: the observations, shape (N, *obs_shape).

    Returns:
        distances, shape (n, N). Their mean and median over draws and cases are the thesis's "mean / median
        re-simulation error" (table 4.1, averaged over the whole posterior).

    References:
        Ardizzone, PhD thesis, section 4.2.2.
    """
    xr_ = np.asarray(x_resim, dtype=float)
    xo = np.asarray(x_o, dtype=float)
    diff = (xr_ - xo[None]).reshape(xr_.shape[0], xr_.shape[1], -1)
    return np.sqrt((diff**2).sum(-1))


def rmse(estimate: Any, truth: Any) -> tuple[float, np.ndarray]:
    """Root mean squared error of point estimates: sqrt(mean_i ||theta_hat_i - theta*_i||^2).

    Arguments:
        estimate: point estimates (posterior mean or MAP), shape (N, D).
        truth: true parameters, shape (N, D).

    Returns:
        ``(overall, per_parameter)``: the joint RMSE and the RMSE of each parameter, shape (D,).
    """
    e = np.asarray(estimate, dtype=float)
    t = np.asarray(truth, dtype=float)
    sq = (e - t) ** 2
    return float(np.sqrt(sq.sum(-1).mean())), np.sqrt(sq.mean(0))


def map_estimate(samples: Any, *, kde_bandwidth: float = 0.1) -> np.ndarray:
    """MAP estimate from posterior draws by mean-shift clustering.

    As in the thesis's evaluation code: cluster the draws with mean shift (flat kernel, bandwidth from
    scikit-learn's ``estimate_bandwidth`` rule: the mean distance to the 30%-quantile nearest neighbour), score each
    cluster centre by a Gaussian KDE of the draws (bandwidth 0.1), and return the draw nearest to the best centre.
    The mean shift is scikit-learn's ``MeanShift(bin_seeding=True)`` algorithm, vectorized over seeds in NumPy
    (scikit-learn's per-seed loop takes seconds per posterior).

    Arguments:
        samples: draws of one posterior, shape (n, D), or of several, shape (n, N, D).
        kde_bandwidth: Gaussian KDE bandwidth used to rank the centres.

    Returns:
        the MAP estimate, shape (D,) or (N, D).

    References:
        Ardizzone, PhD thesis, section 4.2.3 (tissue MAP); vislearn inn_toy_data ``find_MAP``;
        Comaniciu & Meer, *Mean shift: a robust approach toward feature space analysis*, TPAMI 2002.
    """
    s = np.asarray(samples, dtype=float)
    if s.ndim == 3:
        return np.stack([map_estimate(s[:, i], kde_bandwidth=kde_bandwidth) for i in range(s.shape[1])])
    centres = mean_shift_centres(s)
    d2 = cdist(centres, s, "sqeuclidean")  # (C, n)
    density = np.exp(-0.5 * d2 / kde_bandwidth**2).sum(1)
    best = centres[np.argmax(density)]
    return s[np.argmin(((s - best) ** 2).sum(-1))]


def mean_shift_centres(s: np.ndarray, *, quantile: float = 0.3, max_iter: int = 300) -> np.ndarray:
    """Mode centres of draws ``s`` (n, D) by flat-kernel mean shift with bin seeding (scikit-learn's algorithm)."""
    n = len(s)
    d = cdist(s, s)
    k = max(int(n * quantile), 1)
    bandwidth = float(np.partition(d, k - 1, axis=1)[:, k - 1].mean()) or 1.0
    seeds = np.unique(np.round(s / bandwidth), axis=0) * bandwidth
    for _ in range(max_iter):
        within = cdist(seeds, s, "sqeuclidean") < bandwidth**2  # (S, n)
        count = within.sum(1)
        keep = count > 0
        seeds, within, count = seeds[keep], within[keep], count[keep]
        new = within @ s / count[:, None]
        shift = np.abs(new - seeds).max()
        seeds = new
        if shift < 1e-3 * bandwidth:
            break
    count = (cdist(seeds, s, "sqeuclidean") < bandwidth**2).sum(1)
    order = np.argsort(-count, kind="stable")
    centres: list[np.ndarray] = []
    for i in order:  # drop near-duplicate centres, keeping the most populated (as scikit-learn does)
        if all(((seeds[i] - c) ** 2).sum() >= bandwidth**2 for c in centres):
            centres.append(seeds[i])
    return np.asarray(centres)


def c2st(a: Any, b: Any, *, folds: int = 5, seed: int = 0, max_iter: int = 1000, early_stopping: bool = True) -> float:
    """Classifier two-sample test: cross-validated accuracy of telling sample set ``a`` from ``b``.

    An MLP (two hidden layers of 10 D units, as in sbi's ``c2st``, plus early stopping) is trained on z-scored
    data to separate the two sets; the mean ``folds``-fold cross-validated accuracy is returned.
    0.5 = indistinguishable (the posterior matches the reference), 1.0 = fully separable.

    Arguments:
        a: samples, shape (n_a, D).
        b: samples, shape (n_b, D).
        folds: cross-validation folds.
        seed: seed of the classifier's initialization and fold shuffling.
        max_iter: MLP training iterations.
        early_stopping: stop each fold's training on a 10% validation split (~10x faster on near-indistinguishable
            sets); ``False`` is sbibm's classifier exactly (benchmarks/sbibm.py, for numbers comparable with its).

    Returns:
        accuracy in [0, 1].

    References:
        Lopez-Paz & Oquab, *Revisiting classifier two-sample tests*, ICLR 2017; Lueckmann et al., *Benchmarking
        simulation-based inference*, AISTATS 2021.
    """
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neural_network import MLPClassifier

    a = np.asarray(a, dtype=float).reshape(len(a), -1)
    b = np.asarray(b, dtype=float).reshape(len(b), -1)
    X = np.concatenate((a, b))
    mean, std = a.mean(0), a.std(0)
    X = (X - mean) / np.where(std > 0, std, 1.0)
    y = np.concatenate((np.zeros(len(a)), np.ones(len(b))))
    dim = X.shape[1]
    clf = MLPClassifier(
        hidden_layer_sizes=(10 * dim, 10 * dim),
        activation="relu",
        max_iter=max_iter,
        solver="adam",
        early_stopping=early_stopping,
        random_state=seed,
    )
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return float(cross_val_score(clf, X, y, cv=cv, scoring="accuracy").mean())


def mmd(a: Any, b: Any, *, bandwidth: float | None = None) -> float:
    """Squared maximum mean discrepancy with a Gaussian kernel (unbiased U-statistic).

    ``MMD^2 = E k(a, a') + E k(b, b') - 2 E k(a, b)`` with ``k(u, v) = exp(-||u - v||^2 / (2 h^2))``. The bandwidth
    h defaults to the median pairwise distance of the pooled samples (median heuristic). About 0 for samples of the
    same distribution (it can be slightly negative), positive otherwise.

    Arguments:
        a: samples, shape (n_a, D).
        b: samples, shape (n_b, D).
        bandwidth: kernel bandwidth h (default: median heuristic).

    Returns:
        the unbiased MMD^2 estimate.

    References:
        Gretton et al., *A kernel two-sample test*, JMLR 2012.
    """
    a = np.asarray(a, dtype=float).reshape(len(a), -1)
    b = np.asarray(b, dtype=float).reshape(len(b), -1)
    pooled = np.concatenate((a, b))
    d2 = cdist(pooled, pooled, "sqeuclidean")
    if bandwidth is None:
        off = d2[np.triu_indices(len(pooled), 1)]
        bandwidth = float(np.sqrt(np.median(off))) or 1.0
    k = np.exp(-d2 / (2 * bandwidth**2))
    na = len(a)
    kaa, kbb, kab = k[:na, :na], k[na:, na:], k[:na, na:]
    m, n = na, len(b)
    return float(
        (kaa.sum() - np.trace(kaa)) / (m * (m - 1)) + (kbb.sum() - np.trace(kbb)) / (n * (n - 1)) - 2 * kab.mean()
    )


def _samples_truth(samples: Any, truth: Any) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(samples, dtype=float)
    t = np.asarray(truth, dtype=float)
    if s.ndim != 3 or t.shape != s.shape[1:]:
        raise ValueError(f"samples must have shape (n, N, D) and truth (N, D); got {s.shape} and {t.shape}")
    return s, t
