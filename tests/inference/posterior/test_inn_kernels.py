"""MMD with multi-scale inverse multiquadratic kernels."""

from __future__ import annotations

import pytest
import torch

from inference.posterior.inn.kernels import imq, kernel_matrix, mmd_loss, squared_distances

KERNELS = [imq(0.2, 1.0), ((0.2, 2.0), (1.5, 2.0), (3.0, 2.0)), ((0.2, 0.1), (0.2, 0.5), (0.2, 2.0))]


def _normal(n, d, seed, shift=0.0):
    return torch.randn(n, d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)) + shift


@pytest.mark.parametrize("kernel", KERNELS)
def test_identical_sets_have_zero_mmd(kernel):
    x = _normal(300, 3, 0)
    assert float(mmd_loss(x, x, kernel)) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("kernel", KERNELS)
def test_shifted_sets_have_larger_mmd_than_independent_draws_of_one_distribution(kernel):
    x, y = _normal(500, 2, 1), _normal(500, 2, 2)
    same = float(mmd_loss(x, y, kernel))
    shifted = float(mmd_loss(x, _normal(500, 2, 3, shift=1.0), kernel))
    assert shifted > 0
    # biased MMD^2 of equal distributions is O(1/n) ~ 1e-3 here; a unit shift gives O(0.1): a 10x margin is far
    # outside Monte-Carlo noise
    assert shifted > 10 * abs(same)


def test_imq_is_the_thesis_kernel():
    d2 = torch.linspace(0, 10, 101, dtype=torch.float64)
    h = 0.7
    assert torch.allclose(kernel_matrix(d2, imq(h)), 1.0 / (1.0 + d2 / h**2), atol=1e-14)


@pytest.mark.parametrize("pair", [(0.2, 0.1), (0.2, 0.5), (1.5, 1.0), (3.0, 2.0), (0.7, 1.3)])
def test_fast_paths_match_the_generalized_formula(pair):
    c, a = pair
    d2 = torch.linspace(0, 10, 101, dtype=torch.float64)
    assert torch.allclose(kernel_matrix(d2, (pair,)), c**a * ((c + d2) / a) ** (-a), rtol=1e-12, atol=0)


def test_squared_distances_match_cdist_and_are_nonnegative():
    x, y = _normal(20, 4, 4), _normal(30, 4, 5)
    d2 = squared_distances(x, y)
    assert torch.allclose(d2, torch.cdist(x, y) ** 2, atol=1e-10)
    assert (squared_distances(x, x) >= 0).all()


def test_unit_weights_change_nothing_and_bad_shapes_fail():
    x, y = _normal(50, 2, 6), _normal(50, 2, 7)
    k = imq(1.0)
    assert torch.allclose(mmd_loss(x, y, k, weights=torch.ones(50, 50, dtype=torch.float64)), mmd_loss(x, y, k))
    with pytest.raises(ValueError):
        mmd_loss(x, _normal(50, 3, 8), k)
    with pytest.raises(ValueError):
        mmd_loss(x, y, ((0.0, 1.0),))
    with pytest.raises(ValueError):
        imq(-1.0)
