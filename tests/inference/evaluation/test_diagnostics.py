"""Diagnostics tested against exact posteriors.

Tolerance basis: with N test cases, an inlier fraction has standard error sqrt(alpha (1 - alpha) / N) <= 0.5 / sqrt(N);
stochastic claims below use 4 such standard errors (false alarm < 1e-4), p-values use 1e-4, C2ST of exact sample sets
[0.4, 0.6] (STYLE.md).
"""

import numpy as np
import pytest
import torch
from sklearn.cluster import MeanShift

import simulators
from inference.evaluation import diagnostics as dg

N = 400  # test cases
SE = 0.5 / np.sqrt(N)


@pytest.fixture(scope="module")
def gm_cases():
    """Gaussian-mixture test cases with one label per mode: posterior N(mu_label, 0.2^2 I), exact."""
    g = torch.Generator().manual_seed(0)
    gm = simulators.get("gaussian-mixture", labels="all")
    theta = simulators.sample_prior(gm.prior, N, generator=g)
    x = gm.simulate(theta, generator=g)
    exact = gm.reference_posterior(x, 500, generator=g)  # (n, N, 2)
    mu = gm.means[x.argmax(-1)]  # (N, 2)
    eps = torch.randn(exact.shape, generator=g)
    return {
        "truth": theta.numpy(),
        "exact": exact.numpy(),
        "wide": (mu + 2 * gm.std * eps).numpy(),
        "narrow": (mu + 0.5 * gm.std * eps).numpy(),
    }


def test_calibration_exact_wide_narrow(gm_cases):
    t = gm_cases["truth"]
    exact = dg.calibration_error(gm_cases["exact"], t)
    assert exact.inlier.shape == (100, 2) and exact.error_per_parameter.shape == (2,)
    np.testing.assert_allclose(exact.levels, np.arange(1, 101) / 101)
    assert exact.error < 4 * SE
    assert (exact.error_per_parameter < 4 * SE).all()
    # too wide: the truth falls inside more often than alpha (curve above the diagonal)
    wide = dg.calibration_error(gm_cases["wide"], t)
    assert (wide.inlier - wide.levels[:, None]).mean() > 4 * SE
    assert wide.error > 4 * SE
    narrow = dg.calibration_error(gm_cases["narrow"], t)
    assert (narrow.inlier - narrow.levels[:, None]).mean() < -4 * SE
    assert narrow.error > 4 * SE


def test_calibration_curve_counts_strict_inequalities():
    # One case, draws 0..100: the central 50% interval is (25, 75); a truth on the boundary is outside.
    s = np.arange(101, dtype=float)[:, None, None]
    levels, inl = dg.calibration_curve(s, np.array([[25.0]]), levels=[0.5])
    assert inl[0, 0] == 0.0
    _, inl = dg.calibration_curve(s, np.array([[25.5]]), levels=[0.5])
    assert inl[0, 0] == 1.0


def test_sbc_uniform_for_exact_and_not_for_narrow(gm_cases):
    t = gm_cases["truth"]
    ranks = dg.sbc_ranks(gm_cases["exact"], t)
    assert ranks.shape == (N, 2) and ranks.min() >= 0 and ranks.max() <= 500
    assert (dg.sbc_uniformity(ranks, 500) > 1e-4).all()
    assert (dg.sbc_uniformity(dg.sbc_ranks(gm_cases["narrow"], t), 500) < 1e-4).all()


def test_expected_coverage_hpd():
    # Conjugate Gaussian: theta ~ N(0, 1), x = theta + N(0, 1); posterior N(x / 2, 1 / 2).
    rng = np.random.default_rng(1)
    theta = rng.normal(size=N)
    x = theta + rng.normal(size=N)
    m, s = x / 2, np.sqrt(0.5)
    for width, sign in ((1.0, 0), (2.0, 1), (0.5, -1)):
        draws = m + width * s * rng.normal(size=(300, N))
        sd = width * s  # log densities up to a constant
        cov = dg.expected_coverage(-0.5 * ((draws - m) / sd) ** 2, -0.5 * ((theta - m) / sd) ** 2)
        dev = (cov - dg.LEVELS).mean()
        if sign == 0:
            assert abs(dev) < 4 * SE
        else:
            assert sign * dev > 4 * SE


def test_resimulation_error_of_exact_arm_posterior_is_zero():
    arm = simulators.get("arm")
    g = torch.Generator().manual_seed(2)
    x_o = arm.simulate(torch.tensor([[0.1, 0.3, -0.2, 0.4], [0.0, -0.3, 0.2, 0.1]]))
    post = arm.reference_posterior(x_o, 200, generator=g)  # (200, 2, 4), exact solutions of s(theta) = x_o
    err = dg.resimulation_error(arm.simulate(post), x_o)
    assert err.shape == (200, 2)
    assert err.max() < 1e-4  # float32 round-off of an exact identity


def test_rmse_identity():
    est = np.array([[1.0, 2.0], [0.0, 0.0]])
    truth = np.array([[1.0, 0.0], [3.0, 4.0]])
    overall, per = dg.rmse(est, truth)
    assert overall == pytest.approx(np.sqrt((4 + 25) / 2))
    np.testing.assert_allclose(per, [np.sqrt(9 / 2), np.sqrt(20 / 2)])


def test_mean_shift_matches_scikit_learn_and_map_picks_heavier_mode():
    rng = np.random.default_rng(3)
    s = np.concatenate((rng.normal(size=(700, 3)) * 0.3 + 2.0, rng.normal(size=(300, 3)) * 0.3 - 2.0))
    ours = dg.mean_shift_centres(s)
    ref = MeanShift(bin_seeding=True).fit(s).cluster_centers_
    np.testing.assert_allclose(np.sort(ours, 0), np.sort(ref, 0), atol=1e-6)
    m = dg.map_estimate(s)
    assert np.abs(m - 2.0).max() < 0.4  # a draw near the heavier mode (draw spread 0.3 per coordinate)
    assert dg.map_estimate(s[:, None, :]).shape == (1, 3)


def test_c2st_and_mmd_on_exact_and_shifted_sets():
    gm = simulators.get("gaussian-mixture")
    g = torch.Generator().manual_seed(4)
    x = torch.nn.functional.one_hot(torch.tensor(0), 8).float()  # label 0: four modes
    a = gm.reference_posterior(x, 600, generator=g).numpy()
    b = gm.reference_posterior(x, 600, generator=g).numpy()
    acc = dg.c2st(a, b)
    assert 0.4 <= acc <= 0.6
    assert dg.c2st(a, b + 0.5) > 0.7  # a shift of 2.5 mode widths is easy to detect
    same, shifted = dg.mmd(a, b), dg.mmd(a, b + 0.5)
    assert shifted > 0.01 and abs(same) < shifted / 5


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="shape"):
        dg.calibration_error(np.zeros((10, 3, 2)), np.zeros((4, 2)))
