"""Color-MNIST: exact inverse, exact fiber sampler, the color density."""

import math

import pytest
import torch

import simulators
from simulators import color_mnist as cm


@pytest.fixture(scope="module")
def sim():
    return simulators.get("color-mnist")


def test_embedded_digits_have_a_background_border(sim):
    d = sim.digits
    assert d.shape[1:] == (16, 16) and len(d) == 1797
    assert d[:, 0].abs().max() == 0 and d[:, -1].abs().max() == 0
    assert d[:, :, 0].abs().max() == 0 and d[:, :, -1].abs().max() == 0
    assert 0 <= d.min() and d.max() <= 1


def test_decolorize_inverts_colorize(sim, generator):
    theta = simulators.sample_prior(sim.prior, (64,), generator=generator).double()
    x = sim.simulate(theta)
    grey, c0 = sim.split(theta)
    assert torch.allclose(cm.background_color(x), c0, atol=1e-12)
    back = cm.decolorize(x)
    assert torch.allclose(back, grey.unsqueeze(-3).expand_as(back), atol=1e-10)


def test_fiber_sampler_leaves_decolorize_invariant(sim, generator):
    theta = simulators.sample_prior(sim.prior, (3,), generator=generator).double()
    x = sim.simulate(theta)
    fib = sim.fiber_sample(x, 50, generator=generator)
    assert fib.shape == (50, 3, 3, 16, 16)
    assert torch.allclose(cm.decolorize(fib), cm.decolorize(x).expand_as(fib), atol=1e-10)
    # and the recolorings really differ from each other
    assert cm.background_color(fib).std(0).min() > 0.01


def test_color_density_integrates_to_one():
    g = torch.linspace(0, 1, 20001, dtype=torch.float64)
    dens = cm.channel_mixture(dtype=torch.float64).log_prob(g).exp()
    # trapezoid quadrature; the mass outside [0, 1] (clipped) is < 1e-4
    assert torch.trapezoid(dens, g).item() == pytest.approx(1.0, abs=2e-4)


def test_sampled_colors_follow_the_mixture(generator):
    """Mean of c ~ p(c) within 4 standard errors of the mixture mean 0.6*0.7 + 0.35*0.5 + 0.05*0.1."""
    c = cm.sample_colors((50000,), generator=generator, dtype=torch.float64)
    mean = 0.6 * 0.7 + 0.35 * 0.5 + 0.05 * 0.1
    se = c.std() / math.sqrt(c.numel())
    assert abs(c.mean().item() - mean) < 4 * se + 1e-5  # + clipping shift, < 1e-5 (mass beyond 1 is ~5e-5)


def test_ood_variant_unties_digit_color(generator):
    ood = simulators.get("color-mnist", variant="ood")
    theta = simulators.sample_prior(ood.prior, (200,), generator=generator)
    x = ood.simulate(theta, generator=generator)
    grey, c0 = ood.split(theta)
    ink = grey > 0.99
    digit_col = torch.stack([x[i][:, ink[i]].mean(-1) for i in range(200)])
    tied = (digit_col - cm.digit_color(c0)).abs().max(-1).values < 1e-4
    assert tied.float().mean() < 0.1


def test_prior_log_prob_is_empirical(sim, generator):
    theta = simulators.sample_prior(sim.prior, (4,), generator=generator)
    lp = sim.prior.log_prob(theta)
    assert torch.isfinite(lp).all()
    moved = theta.clone()
    moved[:, 40] += 0.123
    assert torch.isinf(sim.prior.log_prob(moved)).all()


def test_real_mnist_idx_loader(tmp_path):
    import gzip

    import numpy as np

    imgs = (np.arange(2 * 28 * 28) % 256).astype(np.uint8).reshape(2, 28, 28)
    header = bytes([0, 0, 8, 3]) + (2).to_bytes(4, "big") + (28).to_bytes(4, "big") + (28).to_bytes(4, "big")
    with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(header + imgs.tobytes())
    labels = np.array([3, 7], dtype=np.uint8)
    with gzip.open(tmp_path / "train-labels-idx1-ubyte.gz", "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + (2).to_bytes(4, "big") + labels.tobytes())
    sim = simulators.get("color-mnist", data=str(tmp_path))
    assert sim.obs_shape == (3, 28, 28)
    assert sim.labels.tolist() == [3, 7]
    assert torch.allclose(sim.digits[1], torch.tensor(imgs[1] / 255.0, dtype=torch.float32))
    (tmp_path / "bad.npz").write_bytes(b"not an archive")
    with pytest.raises(FileNotFoundError):
        simulators.get("color-mnist", data=str(tmp_path / "missing"))
