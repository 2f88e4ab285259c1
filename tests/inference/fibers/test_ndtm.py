"""NDTM guidance: gamma = 0 is unguided sampling, stronger guidance contracts to the fiber, bad inputs fail early."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, FlowMatchEulerDiscreteScheduler, UNet2DModel

from inference.fibers.checks import check_compatible
from inference.fibers.ndtm import NDTMOptions, ndtm_sample
from zoo import DiffusionPrior, Subject

SCHEDULERS = {"ddpm": DDPMScheduler, "ddim": DDIMScheduler, "flow": FlowMatchEulerDiscreteScheduler}


def _unet(seed: int = 0) -> UNet2DModel:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNet2DModel(
            sample_size=8,
            in_channels=3,
            out_channels=3,
            block_out_channels=(8, 8),
            layers_per_block=1,
            down_block_types=("DownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "UpBlock2D"),
            norm_num_groups=4,
        ).eval()


def _prior(kind: str = "ddpm") -> DiffusionPrior:
    return DiffusionPrior(_unet(), SCHEDULERS[kind](), normalization={"mean": 0.5, "std": 0.5})


def _subject(seed: int = 1) -> Subject:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = torch.nn.Sequential(
            torch.nn.Conv2d(3, 4, 3, stride=2), torch.nn.Tanh(), torch.nn.Flatten(), torch.nn.Linear(36, 6)
        )
    return Subject(net, input_shape=(3, 8, 8)).eval()


def _x(n: int = 4) -> torch.Tensor:
    return torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(0))


def _g(seed: int = 1) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("kind", sorted(SCHEDULERS))
def test_gamma_zero_is_unguided_sampling(kind):
    # Exact identity: with gamma = 0 the loop draws the same noise in the same order as prior.sample.
    prior = _prior(kind)
    unguided = prior.sample(4, num_steps=6, generator=_g())
    r = ndtm_sample(prior, _subject(), x=_x(), options=NDTMOptions(num_steps=6, gamma=0.0), generator=_g())
    torch.testing.assert_close(r.samples, unguided, rtol=0, atol=0)
    assert r.terminal.shape == (6, 4) and bool((r.terminal == 0).all()) and bool((r.gamma == 0).all())


@pytest.mark.parametrize("kind", ["ddpm", "flow"])
def test_stronger_guidance_lowers_the_fiber_loss(kind):
    # Same initial noise and step noise for every gamma (paired); the mean fiber loss over 8 samples must fall
    # strictly at each of three strengths. On this case the ratios are large (ddpm 1.6x, 4x; flow 7.5x, 400x: see the
    # margin factor). A normalized step moves a pixel by lr * gamma on average, so gamma = 100 (0.2 per pixel and
    # step) overshoots the optimum of this tiny problem (flow: 1.2e-4 at 30 against 4.9e-5 at 10).
    prior, phi, x = _prior(kind), _subject(), _x(8)
    losses = []
    for gamma in (0.0, 3.0, 10.0):
        o = NDTMOptions(num_steps=10, gamma=gamma, schedule="constant")
        losses.append(float(ndtm_sample(prior, phi, x=x, options=o, generator=_g()).fiber_loss.mean()))
    assert losses[0] > 1.2 * losses[1] > 1.2 * 1.2 * losses[2], losses


def test_cost_terms_are_logged_and_consistent():
    prior, phi, x = _prior("ddim"), _subject(), _x(3)
    o = NDTMOptions(num_steps=5, gamma=5.0, tau=1e-3, schedule="mid+end")
    r = ndtm_sample(prior, phi, x=x, options=o, generator=_g())
    assert r.terminal.shape == r.control.shape == r.score.shape == (5, 3)
    for term in (r.terminal, r.control, r.score):
        assert bool(torch.isfinite(term).all()) and bool((term >= 0).all())
    # guidance ran at every step (the schedule is positive everywhere), so u_t moved away from zero
    assert bool((r.control > 0).all())
    # the final fiber loss is recomputed against the static target phi(x)
    torch.testing.assert_close(r.fiber_loss, (phi(r.samples) - phi(x)).pow(2).sum(-1), rtol=1e-5, atol=1e-6)


def test_deterministic_under_a_generator_and_static_target_differs():
    prior, phi, x = _prior("ddpm"), _subject(), _x(2)
    o = NDTMOptions(num_steps=4, gamma=20.0)
    a = ndtm_sample(prior, phi, x=x, options=o, generator=_g())
    b = ndtm_sample(prior, phi, x=x, options=o, generator=_g())
    torch.testing.assert_close(a.samples, b.samples, rtol=0, atol=0)
    static = NDTMOptions(num_steps=4, gamma=20.0, renoise_target=False)
    c = ndtm_sample(prior, phi, h=phi(x).detach(), options=static, generator=_g())
    assert not torch.equal(a.samples, c.samples)


def test_renoise_until_switches_to_the_static_target():
    # Exact identities: with renoise_until = 1 no step uses the re-noised target (t/T < 1 always), so the run equals
    # the static-target run draw for draw; with renoise_until = 0 every step re-noises, which changes the samples.
    prior, phi, x = _prior("ddpm"), _subject(), _x(2)
    base = {"num_steps": 4, "gamma": 20.0}
    never = ndtm_sample(prior, phi, x=x, options=NDTMOptions(**base, renoise_until=1.0), generator=_g())
    static = ndtm_sample(prior, phi, x=x, options=NDTMOptions(**base, renoise_target=False), generator=_g())
    torch.testing.assert_close(never.samples, static.samples, rtol=0, atol=0)
    always = ndtm_sample(prior, phi, x=x, options=NDTMOptions(**base, renoise_until=0.0), generator=_g())
    assert not torch.equal(always.samples, static.samples)
    with pytest.raises(ValueError, match="renoise_until"):
        NDTMOptions(renoise_until=1.5)


def test_schedule_emphasizes_the_mid_range():
    o = NDTMOptions(gamma=2.0, schedule="mid+end", mid=(0.4, 0.7), outside=0.5, end=3.0, end_from=0.1)
    assert o.gamma_t(0.55) == 2.0 and o.gamma_t(0.9) == 1.0 and o.gamma_t(0.2) == 1.0
    assert o.gamma_t(0.0) == pytest.approx(6.0) and o.gamma_t(0.05) == pytest.approx(2 * 0.5 * (0.5 + 3.0))
    with pytest.raises(ValueError, match="schedule"):
        NDTMOptions(schedule="cosine")


def test_bad_inputs_fail_before_sampling():
    prior, phi = _prior(), _subject()
    with pytest.raises(ValueError, match="shape"):
        check_compatible(prior, phi, torch.rand(1, 1, 8, 8))
    argmax = Subject(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 3), _Argmax()))
    with pytest.raises(ValueError, match="not differentiable"):
        check_compatible(prior, argmax, _x(1))
    prior.meta["input"] = {"range": [-1.0, 1.0]}
    phi.meta["input"] = {"range": [0.0, 1.0]}
    with pytest.raises(ValueError, match="range"):
        check_compatible(prior, phi, _x(1))


class _Argmax(torch.nn.Module):
    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h.argmax(-1, keepdim=True).float()
