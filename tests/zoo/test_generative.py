"""The IB-INN generative classifier against exact truth: invertibility, the log-determinant against an autograd
Jacobian, a 2-D density that integrates to one, Bayes' rule (p(y|x) from the two log-probabilities equals the
softmax form), class fibers decoding to their class, and training on the Gaussian mixture's labelled points."""

from __future__ import annotations

import math

import pytest
import torch

import simulators
from zoo.generative import build_ib_inn, ib_loss


def perturbed(model, scale: float = 0.1, seed: int = 0):
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for name, p in model.named_parameters():
            if name != "mu":
                p.add_(scale * torch.randn_like(p))
    return model


def tiny_images():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        m = perturbed(build_ib_inn(input_shape=(3, 4, 4), classes=3, blocks=[1, 1, 1], hidden=[4, 4, 4]))
        m.latent(torch.rand(16, 3, 4, 4))  # ActNorm's data-dependent initialization, as on a first training batch
        return m


def test_images_round_trip_and_log_det_is_the_jacobian():
    m = tiny_images().double()
    x = torch.rand(2, 3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    z, logdet = m.latent(x)
    torch.testing.assert_close(m.decode(z), x, rtol=0, atol=1e-9)
    for i in range(2):
        jac = torch.autograd.functional.jacobian(lambda v: m.latent(v.reshape(1, 3, 4, 4))[0][0], x[i].flatten())
        torch.testing.assert_close(logdet[i], torch.linalg.slogdet(jac).logabsdet, rtol=0, atol=1e-8)


def test_a_2d_density_integrates_to_one():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        m = perturbed(build_ib_inn(input_shape=(2,), classes=4, blocks=4, hidden=16), 0.2)
    g = torch.linspace(-7, 7, 501)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    x = torch.stack((xx.flatten(), yy.flatten()), -1)
    with torch.no_grad():
        total = float(m.log_prob(x).exp().sum() * (g[1] - g[0]) ** 2)
        per_class = [float(m.log_prob(x, torch.full((len(x),), k)).exp().sum() * (g[1] - g[0]) ** 2) for k in (0, 3)]
    # Riemann sum on a 501^2 grid over [-7, 7]^2: quadrature and truncation error well below 1e-2 for densities of
    # this smoothness (the same grid check gives 1 - 1e-4 for a standard normal; tests/zoo/test_flow_prior.py)
    assert abs(total - 1) < 1e-2 and all(abs(p - 1) < 1e-2 for p in per_class)


def test_bayes_rule_from_the_two_log_probs_is_the_softmax():
    m = tiny_images()
    x = torch.rand(5, 3, 4, 4, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        joint = torch.stack([m.log_prob(x, torch.full((5,), k)) for k in range(3)], 1) + m.log_weights
        bayes = (joint - m.log_prob(x)[:, None]).exp()
        torch.testing.assert_close(bayes, m.class_probs(x), rtol=0, atol=1e-5)
        torch.testing.assert_close(bayes.sum(1), torch.ones(5), rtol=0, atol=1e-5)


def test_class_fibers_decode_to_their_class():
    m = tiny_images()
    for y in range(3):
        x = m.sample_class(y, 4, generator=torch.Generator().manual_seed(y), temperature=0.0)
        assert x.shape == (4, 3, 4, 4) and bool((m.class_probs(x).argmax(-1) == y).all())
    with pytest.raises(ValueError, match="class y"):
        m.sample_class(3, 1)


def test_training_on_the_gaussian_mixture_learns_its_labels():
    gm = simulators.get("gaussian-mixture", labels="all")  # one class per mode
    g = torch.Generator().manual_seed(0)
    x = simulators.sample_prior(gm.prior, 4000, generator=g)
    y = gm.simulate(x, generator=g).argmax(-1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        m = build_ib_inn(input_shape=(x.shape[1],), classes=int(y.max()) + 1, blocks=4, hidden=32)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(300):
        i = torch.randint(len(x), (256,), generator=g)
        out = ib_loss(m, x[i], y[i], gamma=1.0, generator=g)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    with torch.no_grad():
        acc = float((m.logits(x).argmax(-1) == y).float().mean())
    assert acc > 0.9 and math.isfinite(float(out["l_x"]))


@pytest.mark.parametrize("covariance", ["diagonal", "full"])
def test_nfpi_training_learns_the_labels_and_keeps_its_class_gaussians(covariance):
    from zoo.generative import fit_generative

    gm = simulators.get("gaussian-mixture")  # 4 labels, the first four modes share one
    g = torch.Generator().manual_seed(0)
    x = simulators.sample_prior(gm.prior, 4000, generator=g)
    y = gm.simulate(x, generator=g).argmax(-1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        m = build_ib_inn(input_shape=(2,), classes=4, blocks=4, hidden=32, covariance=covariance)
    fit_generative(m, x, y, loss="nfpi", lam=1.0, steps=400, batch_size=256, lr=3e-3)
    with torch.no_grad():
        acc = float((m.logits(x).argmax(-1) == y).float().mean())
        joint = torch.stack([m.log_prob(x[:5], torch.full((5,), k)) for k in range(4)], 1) + m.log_weights
        torch.testing.assert_close((joint - m.log_prob(x[:5])[:, None]).exp(), m.class_probs(x[:5]), atol=1e-5, rtol=0)
    assert acc > 0.9 and not m.mu.requires_grad
    saved = "cov" if covariance == "full" else "var"
    assert saved in m.state_dict()  # NFPI's class Gaussians are part of the saved model
    if covariance == "full":
        assert float(torch.linalg.eigvalsh(m.cov).min()) > 0
    assert m.sample_class(2, 3).shape == (3, 2)
    with pytest.raises(ValueError, match="diagonal"):
        fit_generative(build_ib_inn(input_shape=(2,), classes=4), x, y, loss="nfpi")
