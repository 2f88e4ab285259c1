"""OOD scores: masks, LMD with known inpainters, the diffusion inpainter keeping the kept half, p-values that are
uniform for in-distribution inputs (KS) and small for shifted ones, and a contract that runs every registered score."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler
from scipy.stats import kstest

from inference.ood import (
    DiffusionInpainter,
    Typicality,
    checkerboard,
    diffuse_denoise,
    lmd,
    ood_scores,
    roc_auc,
    score,
    score_spec,
    scores,
)
from inference.ood.reconstruct import ssim
from zoo import DiffusionPrior, FlowPrior


@pytest.fixture
def tiny_prior(tiny_unet) -> DiffusionPrior:
    """A tiny, untrained DDPM prior on 3 x 8 x 8 images in [0, 1]."""
    return DiffusionPrior(tiny_unet(), DDPMScheduler(clip_sample=True), normalization={"mean": 0.5, "std": 0.5})


def flow_prior() -> FlowPrior:
    prior = FlowPrior.realnvp(2, num_layers=3, hidden=8)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        for p in prior.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return prior


def test_checkerboard_halves_and_flips():
    m = checkerboard((3, 8, 8), 2)
    assert m.shape == (3, 8, 8) and float(m.mean()) == 0.5
    assert torch.equal(m + checkerboard((3, 8, 8), 2, flip=True), torch.ones(3, 8, 8))
    assert torch.equal(m[0], m[2])  # shared by the channels
    v = checkerboard((10,), 3)
    assert v.tolist() == [1, 1, 1, 0, 0, 0, 1, 1, 1, 0]
    with pytest.raises(ValueError, match="block size"):
        checkerboard((3, 8, 8), 0)


def test_lmd_with_an_identity_inpainter_scores_zero():
    x = torch.rand(5, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    for attempts in (1, 4):
        r = lmd(x, lambda x, mask, g: x.clone(), attempts=attempts)
        assert torch.equal(r.score, torch.zeros(5)) and r.distances.shape == (5, attempts)


def test_lmd_with_a_zero_inpainter_is_the_masked_energy():
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    r = lmd(x, lambda x, mask, g: x * mask, attempts=2, block=4)
    per_attempt = [(x * (1 - checkerboard((1, 8, 8), 4, flip=f))).pow(2).flatten(1).mean(1) for f in (False, True)]
    torch.testing.assert_close(r.distances, torch.stack(per_attempt, 1))
    torch.testing.assert_close(r.score, torch.stack(per_attempt, 1).min(1).values)  # lower median of two


def test_the_diffusion_inpainter_keeps_the_kept_half(tiny_prior):
    prior = tiny_prior
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    mask = checkerboard((3, 8, 8), 2)
    out = DiffusionInpainter(prior, num_steps=4)(x, mask, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out * mask, x * mask, rtol=0, atol=1e-6)
    assert float(((out - x) * (1 - mask)).abs().max()) > 1e-3  # and fills the rest itself


def test_diffuse_denoise_checks_its_level(tiny_prior):
    prior = tiny_prior
    x = torch.rand(2, 3, 8, 8)
    assert diffuse_denoise(prior, x, t=0.3, num_steps=5).shape == x.shape
    with pytest.raises(ValueError, match="fraction of T"):
        diffuse_denoise(prior, x, t=1.5)


def test_ssim_of_an_image_with_itself_is_one():
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(ssim(x, x), torch.ones(3))
    assert bool((ssim(x, torch.rand(3, 3, 16, 16)) < 0.5).all())


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_p_values_of_in_distribution_inputs_are_uniform(alternative):
    prior = flow_prior()
    g = torch.Generator().manual_seed(0)
    ref = prior.sample(3000, generator=g).detach()
    x = prior.sample(600, generator=g).detach()
    r = ood_scores(prior, x, method="likelihood", reference=ref, alternative=alternative)
    assert kstest(r.p_value, "uniform").pvalue > 1e-3
    far = ood_scores(prior, x[:50] + 6.0, method="likelihood", reference=ref, alternative=alternative)
    if alternative != "less":  # "less" tests only the too-typical side
        assert float((far.p_value < 0.01).mean()) > 0.9


def test_typicality_is_a_valid_test_and_roc_auc_is_a_probability():
    test = Typicality(np.arange(199.0))
    assert test.p_values(np.array([-5.0, 99.0, 500.0, np.nan])).tolist() == [0.01, 1.0, 0.01, 0.005]
    assert roc_auc([0, 1, 2], [3, 4]) == 1.0 and roc_auc([3, 4], [0, 1, 2]) == 0.0
    assert roc_auc([1, 2], [1, 2]) == 0.5


def _cheap(name: str) -> dict:
    values = {"num_steps": 2, "attempts": 2, "chains": 2, "rtol": 1e-2, "atol": 1e-2}
    return {f.name: values[f.name] for f in dataclasses.fields(score_spec(name).options) if f.name in values}


@pytest.mark.parametrize("name", scores())
def test_every_registered_score_runs(name, tiny_prior):
    """The contract: a new score is picked up here; it scores a batch with finite values of the right shape and
    refuses bad inputs in one line."""
    spec = score_spec(name)
    prior = tiny_prior
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    out = score(prior, x, name, options=_cheap(name), generator=torch.Generator().manual_seed(0), batch_size=2)
    assert out.score.shape == (3,) and bool(torch.isfinite(out.score).all())
    assert (out.reconstruction is not None) == spec.higher_is_ood
    assert isinstance(spec.kind(prior), str) and spec.kind(prior)
    for bad, match in ((torch.rand(2, 1, 8, 8), "shape"), (torch.full((2, 3, 8, 8), float("nan")), "NaN")):
        with pytest.raises(ValueError, match=match):
            score(prior, bad, name, options=_cheap(name))
    for f in dataclasses.fields(spec.options):
        wrong = "bogus" if f.type == "str" else 0
        with pytest.raises(ValueError):
            spec.make_options({f.name: wrong} if f.name != "block" else {"block": -1})


def test_likelihood_is_exact_for_flow_priors_and_reconstruction_scores_refuse_them():
    prior = flow_prior()
    x = torch.randn(4, 2)
    torch.testing.assert_close(score(prior, x, "likelihood").score, prior.log_prob(x).detach())
    for name in ("lmd", "diffuse-denoise", "elbo"):
        with pytest.raises(ValueError, match="diffusion"):
            score(prior, x, name)


def test_lmd_separates_noise_from_the_prior_data():
    """A real, if tiny, check of the pipeline: the shipped prior's reference data against uniform noise images."""
    import zoo

    prior = zoo.load("color-mnist-ddpm")
    noise = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    r = ood_scores(prior, noise, method="lmd", options={"attempts": 2, "num_steps": 10}, reference_size=20)
    assert r.reference.startswith("color-mnist (tied)")
    assert float(r.score.min()) > float(r.reference_score.max())
    assert bool((r.p_value == 2 / 21).all())  # the smallest two-sided p-value with 20 reference inputs


class SeriesNet(torch.nn.Module):
    """A tiny denoiser for series (B, C, L): an MLP on the flattened series and the time."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self.mlp = torch.nn.Sequential(torch.nn.Linear(size + 1, 16), torch.nn.Tanh(), torch.nn.Linear(16, size))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h = torch.cat([x.flatten(1), t.float().view(-1, 1) / 1000], 1)
        return self.mlp(h).view_as(x)


@pytest.mark.parametrize("scheduler", ["DDIMScheduler", "FlowMatchEulerDiscreteScheduler"])
def test_reconstruction_scores_with_ddim_and_flow_matching_priors(scheduler, tiny_prior):
    import diffusers

    base = tiny_prior
    prior = DiffusionPrior(base.net, getattr(diffusers, scheduler)(), normalization={"mean": 0.5, "std": 0.5})
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    mask = checkerboard((3, 8, 8), 1)
    out = DiffusionInpainter(prior, num_steps=3)(x, mask, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out * mask, x * mask, rtol=0, atol=1e-6)
    for name in ("lmd", "diffuse-denoise", "likelihood"):
        s = score(prior, x, name, options=_cheap(name), generator=torch.Generator().manual_seed(0)).score
        assert s.shape == (2,) and bool(torch.isfinite(s).all())


def test_lmd_on_one_dimensional_series():
    """Spectra: alternating index blocks instead of a checkerboard."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = SeriesNet(2 * 16)
    prior = DiffusionPrior(net, DDPMScheduler(), shape=(2, 16))
    x = torch.randn(3, 2, 16, generator=torch.Generator().manual_seed(0))
    r = score(prior, x, "lmd", options={"attempts": 2, "num_steps": 3, "block": 4})
    assert r.score.shape == (3,) and r.reconstruction.shape == x.shape
    assert bool((r.score > 0).all())
