"""FlowPrior: exact density (it integrates to one) and seeded sampling.

Tolerance: the density of a 2-D flow integrated on a fine grid equals 1 up to quadrature and truncation error,
which is below 1e-3 for the grid used (checked on the standard normal, whose integral is known).
"""

from __future__ import annotations

import pytest
import torch

from zoo import FlowPrior
from zoo.architectures import realnvp


def _flow(seed: int = 0) -> FlowPrior:
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the layers' default initialization draws from the global generator too
        flow = realnvp(dim=2, num_layers=4, hidden=16)
        for p in flow.parameters():  # move away from the identity initialization
            p.add_(0.1 * torch.randn_like(p))
    return FlowPrior(flow, normalization={"mean": 1.0, "std": 0.5})


def _integral(prior: FlowPrior) -> float:
    g = torch.linspace(-5, 7, 601)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    x = torch.stack((xx.flatten(), yy.flatten()), -1)
    with torch.no_grad():
        p = prior.log_prob(x).exp()
    return float(p.sum() * (g[1] - g[0]) ** 2)


def test_log_prob_integrates_to_one():
    prior = _flow()
    assert abs(_integral(prior) - 1) < 1e-2


def test_sampling_is_seeded_and_consistent_with_log_prob():
    prior = _flow()
    a = prior.sample(2000, generator=torch.Generator().manual_seed(0))
    b = prior.sample(2000, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert a.shape == (2000, 2)
    # samples land where the density is: their mean log-density exceeds that of uniform points on the grid box
    with torch.no_grad():
        u = torch.rand(2000, 2, generator=torch.Generator().manual_seed(1)) * 12 - 5
        assert prior.log_prob(a).mean() > prior.log_prob(u).mean() + 1.0


def test_log_prob_has_gradients_and_checks_shape():
    prior = _flow()
    x = torch.randn(5, 2, requires_grad=True)
    prior.log_prob(x).sum().backward()
    assert torch.isfinite(x.grad).all()
    with pytest.raises(ValueError, match="shape"):
        prior.log_prob(torch.zeros(5, 3))
