"""DiffusionPrior against the diffusers schedulers' own arithmetic, and its sampler against an analytic denoiser.

Tolerances: identities between two code paths computing the same float32 formula get atol 1e-5 (rounding only);
sampling an exactly-known Gaussian gets 4 Monte-Carlo standard errors plus a stated discretization allowance.
"""

from __future__ import annotations

import math

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, FlowMatchEulerDiscreteScheduler
from torch import nn

from zoo import DiffusionPrior


def _x(shape=(3, 3, 8, 8), seed=1):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction", "sample"])
@pytest.mark.parametrize("cls", [DDPMScheduler, DDIMScheduler])
def test_tweedie_matches_scheduler_pred_original_sample(cls, prediction, tiny_unet):
    sched = cls(prediction_type=prediction, clip_sample=False)
    prior = DiffusionPrior(tiny_unet(), sched)
    sched.set_timesteps(20)
    x_t = _x()
    for t in sched.timesteps[[0, 7, 19]]:
        out = prior.model_output(x_t, t)
        ref = sched.step(out, t, x_t).pred_original_sample
        torch.testing.assert_close(prior.x0_estimate(x_t, t), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("clip", [False, True])
def test_ddpm_step_matches_scheduler(clip, tiny_unet):
    sched = DDPMScheduler(beta_schedule="squaredcos_cap_v2", clip_sample=clip)
    prior = DiffusionPrior(tiny_unet(), sched)
    n = 10
    sched.set_timesteps(n)
    ts = prior.timesteps(n)
    torch.testing.assert_close(ts[:-1], sched.timesteps)
    x_t = _x() * 3  # large values so that clipping is active
    for k in (0, 4, n - 1):
        t, t_prev = ts[k], ts[k + 1]
        out = prior.model_output(x_t, t)
        ref = sched.step(out, t, x_t, generator=torch.Generator().manual_seed(5)).prev_sample
        ours = prior.step(x_t, t, t_prev, model_output=out, generator=torch.Generator().manual_seed(5))
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_ddim_step_matches_scheduler(eta, tiny_unet):
    sched = DDIMScheduler(clip_sample=True)
    prior = DiffusionPrior(tiny_unet(), sched)
    n = 8
    sched.set_timesteps(n)
    ts = prior.timesteps(n)
    x_t = _x() * 2
    for k in (0, 3, n - 1):
        t, t_prev = ts[k], ts[k + 1]
        out = prior.model_output(x_t, t)
        ref = sched.step(out, t, x_t, eta=eta, generator=torch.Generator().manual_seed(2)).prev_sample
        ours = prior.step(x_t, t, t_prev, eta=eta, model_output=out, generator=torch.Generator().manual_seed(2))
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_ddpm_posterior_equals_ddim_with_eta_one(tiny_unet):
    prior = DiffusionPrior(tiny_unet(), DDPMScheduler(clip_sample=False))
    ts = prior.timesteps(10)
    x_t, z = _x(), _x(seed=3)
    for k in (0, 5, 9):
        a = prior.step(x_t, ts[k], ts[k + 1], noise=z)
        b = prior.step(x_t, ts[k], ts[k + 1], eta=1.0, noise=z)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_flow_matching_euler_and_x0_match_scheduler(tiny_unet):
    sched = FlowMatchEulerDiscreteScheduler(shift=3.0)
    prior = DiffusionPrior(tiny_unet(), sched)
    n = 6
    sched.set_timesteps(n)
    ts = prior.timesteps(n)
    torch.testing.assert_close(ts[:-1], sched.timesteps)
    torch.testing.assert_close(prior.sigma(ts), sched.sigmas)
    x_ours = x_ref = _x()
    for k in range(n):
        out = prior.model_output(x_ref, ts[k])
        x_ref = sched.step(out, ts[k], x_ref).prev_sample
        x_ours = prior.step(x_ours, ts[k], ts[k + 1])
        torch.testing.assert_close(x_ours, x_ref, atol=1e-5, rtol=1e-5)
    x_t, t = _x(), ts[2]
    v = prior.model_output(x_t, t)
    torch.testing.assert_close(prior.x0_estimate(x_t, t), x_t - prior.sigma(t) * v)
    # The x0 estimate is the end point of one Euler step to sigma = 0.
    torch.testing.assert_close(prior.step(x_t, t, 0.0), prior.x0_estimate(x_t, t), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("cls", [DDPMScheduler, FlowMatchEulerDiscreteScheduler])
def test_noise_matches_scheduler(cls, tiny_unet):
    sched = cls()
    prior = DiffusionPrior(tiny_unet(), sched)
    x0, eps = _x(), _x(seed=7)
    t = torch.tensor([10, 500, 999])
    if cls is DDPMScheduler:
        ref = sched.add_noise(x0, eps, t)
    else:
        sched.set_timesteps(1000)
        ref = sched.scale_noise(x0, sched.timesteps[[989, 499, 0]], eps)
        t = sched.timesteps[[989, 499, 0]]
    torch.testing.assert_close(prior.noise(x0, t, eps=eps), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cls", [DDPMScheduler, FlowMatchEulerDiscreteScheduler])
def test_gradients_flow_through_x0_estimate_and_step(cls, tiny_unet):
    prior = DiffusionPrior(tiny_unet(), cls())
    ts = prior.timesteps(5)
    x_t = _x().requires_grad_(True)
    loss = prior.x0_estimate(x_t, ts[1]).pow(2).sum() + prior.step(x_t, ts[1], ts[2]).sum()
    loss.backward()
    assert torch.isfinite(x_t.grad).all() and x_t.grad.abs().sum() > 0
    g = [p.grad for p in prior.net.parameters() if p.grad is not None]
    assert g and all(torch.isfinite(v).all() for v in g)


def test_per_sample_times_equal_rowwise_evaluation(tiny_unet):
    prior = DiffusionPrior(tiny_unet(), DDPMScheduler())
    x_t, t = _x(), torch.tensor([900, 500, 3])
    batched = prior.x0_estimate(x_t, t)
    rows = torch.cat([prior.x0_estimate(x_t[i : i + 1], t[i]) for i in range(3)])
    # batched and single convolutions differ by float32 rounding (~1e-6), amplified by 1 / sqrt(abar_t) <= 10
    torch.testing.assert_close(batched, rows, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="t must be a scalar"):
        prior.x0_estimate(x_t, torch.tensor([1, 2]))


def test_sampling_is_deterministic_under_a_generator_and_has_the_shape(tiny_unet):
    prior = DiffusionPrior(tiny_unet(), DDPMScheduler(), normalization={"mean": 0.5, "std": 0.5})
    a = prior.sample(2, num_steps=4, generator=torch.Generator().manual_seed(0))
    b = prior.sample(2, num_steps=4, generator=torch.Generator().manual_seed(0))
    assert a.shape == (2, 3, 8, 8)
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    # clip_sample=True (the default) keeps the final x0 in [-1, 1], i.e. data in [0, 1]
    assert a.min() >= 0 and a.max() <= 1


def test_unsupported_schedulers_are_refused(tiny_unet):
    with pytest.raises(ValueError, match="unsupported scheduler"):
        from diffusers import EulerDiscreteScheduler

        DiffusionPrior(tiny_unet(), EulerDiscreteScheduler())
    with pytest.raises(ValueError, match="variance_type"):
        DiffusionPrior(tiny_unet(), DDPMScheduler(variance_type="learned"))
    with pytest.raises(ValueError, match="eta"):
        p = DiffusionPrior(tiny_unet(), FlowMatchEulerDiscreteScheduler())
        p.step(_x(), 500.0, 400.0, eta=1.0)


class GaussianDenoiser(nn.Module):
    """The exact denoiser for data x0 ~ N(0, s^2 I): eps*(x_t) or v*(x_t) in closed form."""

    def __init__(self, prior_ref: list, s: float) -> None:
        super().__init__()
        self.prior_ref, self.s = prior_ref, s

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        prior = self.prior_ref[0]
        s2 = self.s**2
        if prior.parametrization == "flow":
            sig = prior.sigma(t).view(-1, 1)
            x0 = (1 - sig) * s2 * x_t / ((1 - sig) ** 2 * s2 + sig**2)  # E[x0 | x_t]
            return (x_t - x0) / sig  # E[v | x_t] with v = eps - x0 = (x_t - x0) / sigma
        a = prior.alpha_bar(t).view(-1, 1)
        return (1 - a).sqrt() * x_t / (a * s2 + 1 - a)  # E[eps | x_t]


@pytest.mark.parametrize(
    "cls,kw,num_steps,bias",
    [
        (DDPMScheduler, {"clip_sample": False}, 1000, 0.01),  # ancestral sampling, all steps
        (DDIMScheduler, {"clip_sample": False}, 100, 0.01),  # deterministic DDIM
        (FlowMatchEulerDiscreteScheduler, {}, 200, 0.02),  # Euler: O(1/steps) discretization error
    ],
)
def test_sampler_with_exact_denoiser_reproduces_the_data_distribution(cls, kw, num_steps, bias):
    s, n, d = 0.5, 4000, 2
    ref: list = []
    prior = DiffusionPrior(GaussianDenoiser(ref, s), cls(**kw), shape=(d,))
    ref.append(prior)
    x = prior.sample(n, num_steps=num_steps, generator=torch.Generator().manual_seed(0))
    v = x.pow(2).mean() / s**2  # should be 1
    se = math.sqrt(2 / (n * d))  # standard error of a chi^2 / (n d) variance estimate
    assert abs(v - 1) < 4 * se + bias, float(v)
    assert abs(x.mean()) < 4 * s / math.sqrt(n * d)
