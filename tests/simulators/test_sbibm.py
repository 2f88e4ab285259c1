"""The sbibm tasks: likelihoods against independent computations, reference posteriors by simulation-based calibration.

A reference posterior is ground truth only if it is right, so each one is checked against the prior and the
simulator alone: for theta* drawn from the prior and x ~ p(x | theta*), the rank of theta* among L reference draws for
x is uniform on {0..L} exactly when the reference draws follow p(theta | x) (Talts et al. 2018). A sampler that is too
narrow, too wide, shifted or missing a mode fails the chi-square test of the ranks.
"""

import math

import pytest
import torch
from scipy import stats

import simulators

TASKS = ("two-moons", "gaussian-linear", "gaussian-linear-uniform", "slcp", "bernoulli-glm")


def _sbc_ranks(sim, n_obs: int, draws: int, seed: int, **ref) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    theta = simulators.sample_prior(sim.prior, n_obs, generator=g).double()
    x = sim.simulate(theta, generator=g)
    post = sim.reference_posterior(x, draws, generator=g, **ref)  # (draws, n_obs, D)
    return (post < theta).sum(0)  # (n_obs, D), each uniform on {0..draws}


@pytest.mark.parametrize("name", TASKS)
def test_reference_posterior_is_calibrated(name):
    sim = simulators.get(name)
    ref = {"pilot": 20_000, "steps": 300} if name == "slcp" else {}
    n_obs, draws, bins = {"slcp": (240, 39, 8), "bernoulli-glm": (300, 39, 8)}.get(name, (1000, 99, 10))
    ranks = _sbc_ranks(sim, n_obs, draws, 0, **ref)
    counts = torch.stack([torch.bincount(r * bins // (draws + 1), minlength=bins) for r in ranks.T])
    p = stats.chisquare(counts.numpy(), axis=1).pvalue
    assert (p > 1e-3).all(), f"{name}: SBC chi-square p-values per parameter {p}"


def test_sbc_catches_a_wrong_reference():
    """The check has power: gaussian-linear's posterior with the prior's variance (too wide) fails it."""
    sim = simulators.get("gaussian-linear")
    g = torch.Generator().manual_seed(0)
    theta = simulators.sample_prior(sim.prior, 1000, generator=g)
    x = sim.simulate(theta, generator=g)
    wide = x / 2 + math.sqrt(0.1) * torch.randn(99, *x.shape, generator=g)
    ranks = (wide < theta).sum(0)
    counts = torch.stack([torch.bincount(r * 10 // 100, minlength=10) for r in ranks.T])
    assert (stats.chisquare(counts.numpy(), axis=1).pvalue < 1e-6).all()


def test_slcp_likelihood_matches_torch_multivariate_normal():
    sim = simulators.get("slcp")
    g = torch.Generator().manual_seed(1)
    theta = simulators.sample_prior(sim.prior, 50, generator=g).double()
    x = sim.simulate(theta, generator=g)
    m, v1, v2, c = sim._moments(theta)
    cov = torch.stack([torch.stack([v1, c], -1), torch.stack([c, v2], -1)], -2)
    mvn = torch.distributions.MultivariateNormal(m.unsqueeze(-2), cov.unsqueeze(-3))
    want = mvn.log_prob(x.reshape(50, 4, 2)).sum(-1)
    torch.testing.assert_close(sim.log_likelihood(theta, x), want)


def test_two_moons_likelihood_is_the_simulators_density():
    """The crescent density integrates to 1 and matches a histogram of simulations at one theta."""
    sim = simulators.get("two-moons")
    theta = torch.tensor([0.3, -0.2], dtype=torch.float64)
    x = sim.simulate(theta.expand(400_000, 2), generator=torch.Generator().manual_seed(0))
    lo, hi = x.min(0).values - 0.01, x.max(0).values + 0.01
    n = 200
    gx = [torch.linspace(float(lo[i]), float(hi[i]), n, dtype=torch.float64) for i in range(2)]
    grid = torch.stack(torch.meshgrid(*gx, indexing="ij"), -1)
    dens = sim.log_likelihood(theta, grid).exp()
    cell = (gx[0][1] - gx[0][0]) * (gx[1][1] - gx[1][0])
    assert abs(float(dens.sum() * cell) - 1) < 0.02
    # probability of the left half of the box: density vs simulations
    left = grid[..., 0] < float((lo[0] + hi[0]) / 2)
    assert abs(float(dens[left].sum() * cell) - float((x[:, 0] < (lo[0] + hi[0]) / 2).double().mean())) < 0.02


def test_gaussian_linear_uniform_reference_stays_in_the_box_for_far_observations():
    sim = simulators.get("gaussian-linear-uniform")
    x = torch.full((10,), 3.0)
    draws = sim.reference_posterior(x, 1000, generator=torch.Generator().manual_seed(0))
    assert draws.shape == (1000, 10) and (draws.abs() <= 1).all() and float(draws.mean()) > 0.8


def test_two_moons_impossible_observation_is_refused_in_one_line():
    with pytest.raises(ValueError, match="impossible under the prior"):
        simulators.get("two-moons").reference_posterior(torch.tensor([5.0, 5.0]), 10)


def test_gaussian_linear_dim_option():
    sim = simulators.get("gaussian-linear", dim=3)
    assert sim.obs_shape == (3,) and len(sim.param_names) == 3
    with pytest.raises(ValueError, match="dim must be"):
        simulators.get("gaussian-linear", dim=0)


def test_bernoulli_glm_summary_is_sbibms_spike_triggered_sums():
    """x = X^T y equals sbibm's summary: the spike count and the last 9 outputs of conv1d(y, stimulus, padding=8)."""
    sim = simulators.get("bernoulli-glm")
    y = (torch.rand(5, 100, generator=torch.Generator().manual_seed(0)) < 0.3).double()
    stimulus = sim.design[:, 1]
    sta = torch.nn.functional.conv1d(y.unsqueeze(1), stimulus.reshape(1, 1, -1), padding=8).squeeze(1)[:, -9:]
    torch.testing.assert_close(y @ sim.design, torch.cat([y.sum(-1, keepdim=True), sta], -1))


def test_bernoulli_glm_likelihood_matches_the_bernoulli_product():
    sim = simulators.get("bernoulli-glm")
    g = torch.Generator().manual_seed(1)
    theta = simulators.sample_prior(sim.prior, 2, generator=g).double()
    y = (torch.rand(100, generator=g) < 0.4).double()
    p = torch.sigmoid(sim.design @ theta.T).T
    exact = torch.distributions.Bernoulli(probs=p).log_prob(y).sum(-1)
    got = sim.log_likelihood(theta, y @ sim.design)
    torch.testing.assert_close(got, exact)  # the spike train is one of those with this summary
