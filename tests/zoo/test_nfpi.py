"""The NFPI fixed-point update: lambda = 0 returns the class moments exactly (started at them, as the paper does,
and converging to them from the identity); covariances stay symmetric positive-definite over 100 updates with
repulsion (lambda = 2 with K = 4, i.e. c = 1/6; the paper's CIFAR100 settings have c <= 0.05); the repulsion
separates the classes (smallest pairwise KL grows with lambda)."""

from __future__ import annotations

import pytest
import torch

from zoo.nfpi import class_moments, gaussian_kl, nfpi_update


def latents(k: int = 4, d: int = 3, n: int = 200, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    centres = 0.8 * torch.randn(k, d, generator=g, dtype=torch.float64)
    y = torch.arange(n) % k
    a = torch.randn(k, d, d, generator=g, dtype=torch.float64) * 0.5 + torch.eye(d, dtype=torch.float64)
    z = centres[y] + torch.einsum("nij,nj->ni", a[y], torch.randn(n, d, generator=g, dtype=torch.float64))
    return z, y


@pytest.mark.parametrize("diagonal", [False, True])
def test_lambda_zero_returns_the_class_moments(diagonal):
    z, y = latents()
    mu, cov = class_moments(z, y, 4, diagonal=diagonal)
    new_mu, new_cov = nfpi_update(z, y, torch.zeros_like(mu), cov, lam=0.0)
    torch.testing.assert_close(new_mu, mu, rtol=0, atol=1e-12)
    torch.testing.assert_close(new_cov, cov, rtol=0, atol=1e-10)
    # from the identity, the iteration (a geometric mean per step) converges to the class covariances
    cur = torch.ones_like(cov) if diagonal else torch.eye(3, dtype=torch.float64).expand(4, 3, 3).clone()
    for _ in range(40):
        _, cur = nfpi_update(z, y, mu, cur, lam=0.0)
    torch.testing.assert_close(cur, cov, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("diagonal", [False, True])
@pytest.mark.parametrize("pi", ["pair", "mean"])
def test_covariances_stay_spd_over_100_updates(diagonal, pi):
    z, y = latents()
    mu, cov = class_moments(z, y, 4, diagonal=diagonal)
    for _ in range(100):
        mu, cov = nfpi_update(z, y, mu, cov, lam=2.0, alpha=1.0, pi=pi)  # c = 1/6, above the paper's <= 0.05
        assert bool(torch.isfinite(mu).all()) and bool(torch.isfinite(cov).all())
        if diagonal:
            assert bool((cov > 0).all())
        else:
            torch.testing.assert_close(cov, cov.transpose(1, 2), rtol=0, atol=1e-12)
            assert float(torch.linalg.eigvalsh(cov).min()) > 0


def test_repulsion_separates_the_classes():
    z, y = latents(seed=1)

    def min_kl(lam: float) -> float:
        mu, cov = class_moments(z, y, 4)
        for _ in range(20):
            mu, cov = nfpi_update(z, y, mu, cov, lam=lam)
        return min(float(gaussian_kl(mu[a], cov[a], mu[b], cov[b])) for a in range(4) for b in range(4) if a != b)

    assert min_kl(2.0) > min_kl(0.6) > min_kl(0.0)  # measured 1.44 > 1.07 > 0.91


def test_gaussian_kl_matches_torch():
    mu0, mu1 = torch.tensor([0.0, 1.0], dtype=torch.float64), torch.tensor([1.0, -1.0], dtype=torch.float64)
    s0 = torch.tensor([[1.0, 0.3], [0.3, 2.0]], dtype=torch.float64)
    s1 = torch.tensor([[2.0, -0.2], [-0.2, 0.5]], dtype=torch.float64)
    want = torch.distributions.kl_divergence(
        torch.distributions.MultivariateNormal(mu0, s0), torch.distributions.MultivariateNormal(mu1, s1)
    )
    torch.testing.assert_close(gaussian_kl(mu0, s0, mu1, s1), want)
    torch.testing.assert_close(
        gaussian_kl(mu0, s0.diagonal(), mu1, s1.diagonal()),
        torch.distributions.kl_divergence(
            torch.distributions.MultivariateNormal(mu0, torch.diag(s0.diagonal())),
            torch.distributions.MultivariateNormal(mu1, torch.diag(s1.diagonal())),
        ),
    )
