"""The arm: geometry against hand-computed poses, and the exact reference posterior."""

import math

import pytest
import torch

import simulators


@pytest.mark.parametrize(
    "theta, expected",
    [
        # all joints straight: the arm points along the reach axis, length 0.5 + 0.5 + 1.0
        ((0.3, 0.0, 0.0, 0.0), (0.3, 2.0)),
        # first joint at 90 degrees, the rest follow relatively (x3 - x2 = 0, x4 - x2 - x3 = -pi/2 + ... )
        ((0.0, math.pi / 2, math.pi / 2, math.pi), (0.5 + 0.5 * 0.0 + 1.0 * 0.0, 0.0 + 0.5 * 1.0 + 1.0 * 1.0)),
    ],
)
def test_thesis_geometry_by_hand(theta, expected):
    # thesis: y1 = x1 + l1 sin x2 + l2 sin(x3 - x2) + l3 sin(x4 - x2 - x3); y2 = l1 cos x2 + ...
    x1, x2, x3, x4 = theta
    y1 = x1 + 0.5 * math.sin(x2) + 0.5 * math.sin(x3 - x2) + 1.0 * math.sin(x4 - x2 - x3)
    y2 = 0.5 * math.cos(x2) + 0.5 * math.cos(x3 - x2) + 1.0 * math.cos(x4 - x2 - x3)
    assert (y1, y2) == pytest.approx(expected, abs=1e-12)
    y = simulators.get("arm").simulate(torch.tensor(theta, dtype=torch.float64))
    assert y.tolist() == pytest.approx([y1, y2], abs=1e-12)


def test_cumulative_geometry_by_hand():
    theta = torch.tensor([0.2, 0.3, -0.4, 0.5], dtype=torch.float64)
    a = (0.3, 0.3 - 0.4, 0.3 - 0.4 + 0.5)
    y1 = 0.5 * math.cos(a[0]) + 0.5 * math.cos(a[1]) + math.cos(a[2])
    y2 = 0.2 + 0.5 * math.sin(a[0]) + 0.5 * math.sin(a[1]) + math.sin(a[2])
    y = simulators.get("arm", variant="cumulative").simulate(theta)
    assert y.tolist() == pytest.approx([y1, y2], abs=1e-12)


@pytest.mark.parametrize("variant", ["thesis", "cumulative"])
def test_joints_end_at_the_end_point(variant, generator):
    arm = simulators.get("arm", variant=variant)
    theta = simulators.sample_prior(arm.prior, (10,), generator=generator).double()
    assert torch.allclose(arm.joints(theta)[..., -1, :], arm.simulate(theta), atol=1e-12)


@pytest.mark.parametrize("variant", ["thesis", "cumulative"])
def test_reference_posterior_resimulates_onto_x_o(variant, generator):
    arm = simulators.get("arm", variant=variant)
    theta = simulators.sample_prior(arm.prior, (4,), generator=generator).double()
    y = arm.simulate(theta)
    s, ess = arm.reference_posterior(y, 500, generator=generator, return_ess=True)
    assert s.shape == (500, 4, 4)
    # exact solution: float64 round-off only
    assert (arm.simulate(s) - y).abs().max() < 1e-9
    assert (ess > 50).all()


def test_noisy_reference_posterior_matches_likelihood_weighting(generator):
    """Two exact samplers must agree: the analytic sampler vs self-normalized importance sampling from the prior.

    Tolerance: 4 combined Monte-Carlo standard errors per posterior mean (false alarm ~1e-4 per coordinate).
    """
    arm = simulators.get("arm", noise_std=0.1)
    y = torch.tensor([0.1, 1.6], dtype=torch.float64)
    s, ess_a = arm.reference_posterior(y, 4000, generator=generator, proposals=400_000, return_ess=True)
    prior = simulators.sample_prior(arm.prior, (1_000_000,), generator=generator).double()
    logw = arm.log_likelihood(prior, y)
    w = torch.softmax(logw, 0)
    mean_is = (w[:, None] * prior).sum(0)
    var_is = (w[:, None] * (prior - mean_is) ** 2).sum(0)
    ess_is = 1 / (w**2).sum()
    se = torch.sqrt(var_is / ess_is + s.var(0) / min(float(ess_a), 4000))
    assert ess_is > 500
    assert ((s.mean(0) - mean_is).abs() < 4 * se).all(), (s.mean(0), mean_is, se)


def test_out_of_reach_observation_is_refused(generator):
    with pytest.raises(ValueError, match="out of the arm's reach"):
        simulators.get("arm").reference_posterior(torch.tensor([0.0, 5.0]), 10, generator=generator)


def test_likelihood_only_with_noise():
    assert not hasattr(simulators.get("arm"), "log_likelihood")
    assert hasattr(simulators.get("arm", noise_std=0.05), "log_likelihood")
    with pytest.raises(ValueError, match="noise_std"):
        simulators.get("arm", noise_std=-1.0)
