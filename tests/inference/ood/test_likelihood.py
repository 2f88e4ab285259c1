"""Likelihoods of inputs against ground truth: a flow prior's exact log_prob equals a change-of-variables
computation with an autograd Jacobian; for Gaussian data with its exact denoiser, the probability-flow ODE returns the
analytic log-density, the ELBO lies below it on average (a bound) and the IWAE bound between the two.

Tolerances: the ODE's error with the exact score comes from the solver (rtol = atol = 1e-5), the one Euler step
from sigma = 0 to the first trained level (sigma_0 = 0.0126 here) and the end distribution N(0, (1 + sigma_T^2) I)
standing in for N(m, (s^2 + sigma_T^2) I); measured below 0.01 nats per input in 4 dimensions. Monte Carlo means
over 256 inputs have a standard error below 0.1 nats for the ELBO (measured sd ~1.2).
"""

from __future__ import annotations

import math

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, FlowMatchEulerDiscreteScheduler
from torch import nn

from inference.ood import elbo, flow_log_prob, iwae, ode_log_prob
from inference.ood.likelihood import divergence
from zoo import DiffusionPrior, FlowPrior
from zoo.architectures import realnvp

M, S, D = 0.3, 0.7, 4  # data N(M, S^2 I) in D dimensions (model space)


def exact_log_prob(x: torch.Tensor) -> torch.Tensor:
    return torch.distributions.Normal(M, S).log_prob(x).sum(-1)


class GaussianEps(nn.Module):
    """The exact E[eps | x_t] for data N(M, S^2 I) at any time t, with abar(t) interpolated in log sigma between the
    scheduler's integer times (as the ODE reads them)."""

    def __init__(self, abar: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("log_sigma", 0.5 * ((1 - abar.double()) / abar.double()).log())

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = t.double().clamp(0, len(self.log_sigma) - 1)
        i = t.floor().long().clamp(max=len(self.log_sigma) - 2)
        w = t - i
        ls = (1 - w) * self.log_sigma[i] + w * self.log_sigma[i + 1]
        a = (1 / (1 + (2 * ls).exp())).float().view(-1, *([1] * (x.ndim - 1)))
        return (1 - a).sqrt() * (x - a.sqrt() * M) / (a * S**2 + 1 - a)


class GaussianVelocity(nn.Module):
    """The exact flow-matching velocity E[eps - x_0 | x_sigma] for data N(M, S^2 I), x_sigma = (1-s) x_0 + s eps."""

    def __init__(self, horizon: int) -> None:
        super().__init__()
        self.horizon = horizon

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        s = (t.float() / self.horizon).view(-1, *([1] * (x.ndim - 1)))
        var = (1 - s) ** 2 * S**2 + s**2
        eps = s * (x - (1 - s) * M) / var  # E[eps | x]
        x0 = M + (1 - s) * S**2 * (x - (1 - s) * M) / var  # E[x_0 | x]
        return eps - x0


def gaussian_prior(scheduler_cls=DDPMScheduler) -> DiffusionPrior:
    sched = scheduler_cls(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", clip_sample=False)
    return DiffusionPrior(GaussianEps(sched.alphas_cumprod), sched, shape=(D,))


def data(n: int, seed: int = 0) -> torch.Tensor:
    return M + S * torch.randn(n, D, generator=torch.Generator().manual_seed(seed))


def test_flow_log_prob_is_the_change_of_variables():
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        flow = realnvp(dim=3, num_layers=4, hidden=16)
        for p in flow.parameters():  # away from the identity initialization
            p.add_(0.2 * torch.randn_like(p))
    prior = FlowPrior(flow, normalization={"mean": 0.5, "std": 2.0})
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(1))

    def to_latent(v: torch.Tensor) -> torch.Tensor:  # data -> latent, through every layer's inverse
        z = (v - 0.5) / 2.0
        for f in reversed(flow.flows):
            z, _ = f.inverse(z[None])
            z = z[0]
        return z

    want = []
    for v in x:
        jac = torch.autograd.functional.jacobian(to_latent, v)
        z = to_latent(v)
        base = torch.distributions.Normal(flow.q0.loc[0], flow.q0.log_scale[0].exp()).log_prob(z).sum()
        want.append(base + torch.linalg.slogdet(jac).logabsdet)
    torch.testing.assert_close(flow_log_prob(prior, x), torch.stack(want).detach(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("scheduler_cls", [DDPMScheduler, DDIMScheduler])
def test_ode_log_prob_is_exact_for_gaussian_data(scheduler_cls):
    prior = gaussian_prior(scheduler_cls)
    x = data(8)
    got = ode_log_prob(prior, x, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got, exact_log_prob(x), rtol=0, atol=1e-2)


def test_ode_log_prob_of_flow_matching_is_exact_for_gaussian_data():
    sched = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000)
    prior = DiffusionPrior(GaussianVelocity(1000), sched, shape=(D,))
    x = data(8)
    torch.testing.assert_close(ode_log_prob(prior, x, rtol=1e-5, atol=1e-5), exact_log_prob(x), rtol=0, atol=1e-2)


def test_the_normalization_is_in_the_log_prob():
    # the same prior on data scaled by 2 (model = (data - 1) / 2): log p drops by D log 2
    base = gaussian_prior()
    scaled = DiffusionPrior(base.net, base.scheduler, shape=(D,), normalization={"mean": 1.0, "std": 2.0})
    x = data(4)
    a = ode_log_prob(base, x, rtol=1e-5, atol=1e-5)
    b = ode_log_prob(scaled, 1.0 + 2.0 * x, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(b, a - D * math.log(2.0), rtol=0, atol=1e-4)


def test_elbo_is_a_bound_and_iwae_lies_between():
    prior = gaussian_prior()
    x = data(256, seed=3)
    g = torch.Generator().manual_seed(0)
    lower = elbo(prior, x, chains=1, num_steps=50, generator=g)
    tighter = iwae(prior, x, chains=64, num_steps=50, generator=g)
    exact = exact_log_prob(x)
    assert float(lower.mean()) < float(tighter.mean()) < float(exact.mean()) + 0.05
    assert float(exact.mean() - lower.mean()) > 0.1  # a real gap: the ELBO is a bound, not the value
    assert float((exact - tighter).mean()) < float((exact - lower).mean()) / 2  # IWAE closes most of it


def test_elbo_refuses_flow_matching():
    sched = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000)
    prior = DiffusionPrior(GaussianVelocity(1000), sched, shape=(D,))
    with pytest.raises(ValueError, match="DDPM or DDIM"):
        elbo(prior, data(2))


def test_hutchinson_divergence_is_unbiased():
    a = torch.randn(6, 6, generator=torch.Generator().manual_seed(0))
    y = torch.randn(3, 6, requires_grad=True)
    f = y @ a.T
    exact = divergence(f, y, None)
    torch.testing.assert_close(exact, torch.full((3,), float(a.trace())))
    g = torch.Generator().manual_seed(1)
    est = torch.stack(
        [divergence(y @ a.T, y, torch.randint(0, 2, y.shape, generator=g).float() * 2 - 1) for _ in range(4000)]
    ).mean(0)
    torch.testing.assert_close(est, exact.detach(), rtol=0, atol=0.25)
