"""The 8-mode mixture: exact posterior, consistency of prior, likelihood and posterior."""

import math

import pytest
import torch

import simulators


def onehot(k):
    return torch.nn.functional.one_hot(torch.tensor(k), 8).double()


def test_means_form_a_regular_octagon():
    gm = simulators.get("gaussian-mixture")
    r = gm.means.norm(dim=-1)
    assert torch.allclose(r, r[0].expand(8), atol=1e-4)
    d = (gm.means - gm.means.roll(1, 0)).norm(dim=-1)
    assert torch.allclose(d, torch.full((8,), 2.0), atol=1e-4)  # side length 2 by construction


@pytest.mark.parametrize("labels", ["some", "all", "none"])
def test_posterior_is_prior_times_likelihood(labels, generator):
    """log p(theta|x) - log p(theta) - log p(x|theta) = -log p(x): constant in theta (exact identity)."""
    gm = simulators.get("gaussian-mixture", labels=labels)
    theta = simulators.sample_prior(gm.prior, (500,), generator=generator).double()
    for k in sorted(set(gm.label_map.tolist())):
        x = onehot(k).expand(500, 8)
        diff = gm.posterior_log_prob(theta, x) - gm.prior.log_prob(theta) - gm.log_likelihood(theta, x)
        finite = torch.isfinite(diff) & (gm.log_likelihood(theta, x) > -30)
        assert finite.sum() > 10
        assert diff[finite].std() < 1e-6
        n_modes = int((gm.label_map == k).sum())
        assert diff[finite].mean().item() == pytest.approx(-math.log(n_modes / 8), abs=1e-6)


def test_posterior_density_integrates_to_one():
    gm = simulators.get("gaussian-mixture")
    g = torch.linspace(-4, 4, 801, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    pts = torch.stack((xx, yy), -1).reshape(-1, 2)
    for k in range(4):
        dens = gm.posterior_log_prob(pts, onehot(k).expand(len(pts), 8)).exp()
        assert (dens.sum() * (g[1] - g[0]) ** 2).item() == pytest.approx(1.0, abs=1e-3)  # grid quadrature error


def test_reference_posterior_mode_weights(generator):
    """Label 0 ('some') covers modes 0-3 equally: each mode's share within 4 binomial standard errors."""
    gm = simulators.get("gaussian-mixture")
    n = 20000
    s = gm.reference_posterior(onehot(0).float(), n, generator=generator)
    nearest = ((s[:, None, :] - gm.means) ** 2).sum(-1).argmin(-1)
    counts = torch.bincount(nearest, minlength=8).double() / n
    se = math.sqrt(0.25 * 0.75 / n)
    assert ((counts[:4] - 0.25).abs() < 4 * se).all()
    assert counts[4:].sum() == 0


def test_simulate_draws_labels_by_responsibility(generator):
    """Points at a mode's centre get that mode's label with probability ~1 (neighbours are 10 sd away)."""
    gm = simulators.get("gaussian-mixture", labels="all")
    x = gm.simulate(gm.means, generator=generator)
    assert torch.equal(x.argmax(-1), torch.arange(8))
    assert x.sum(-1).eq(1).all()


def test_log_likelihood_is_finite_far_from_the_modes():
    """Far from all modes the label probabilities are still well defined (no log 0), in float32 too."""
    gm = simulators.get("gaussian-mixture")
    theta = torch.tensor([[10.0, 10.0], [-8.0, 0.5], [0.0, 0.0]])
    for k in range(4):
        ll = gm.log_likelihood(theta, onehot(k).float().expand(3, 8))
        assert torch.isfinite(ll).all()
    total = torch.stack([gm.log_likelihood(theta, onehot(k).float().expand(3, 8)).exp() for k in range(4)]).sum(0)
    assert torch.allclose(total, torch.ones(3), atol=1e-5)  # the four labels' probabilities sum to one


def test_sample_prior_scalar_shape_for_a_mixture(generator):
    gm = simulators.get("gaussian-mixture")
    assert simulators.sample_prior(gm.prior, (), generator=generator).shape == (2,)
