"""Conditional fiber model: exact PCA autoencoder identities; the fiber loss term contracts samples to the fiber."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from inference.fibers import make_fiber_options
from inference.fibers.conditional import PCAAutoencoder, conditional_fibers, fit_fiber_model, likelihood_gap
from zoo import Subject


def _data(n: int, g: torch.Generator) -> torch.Tensor:
    # correlated Gaussian "images" (1, 4, 4): a fixed mixing of standard normals
    a = torch.linspace(-1, 1, 256).reshape(16, 16).sin() + torch.eye(16)
    return (torch.randn(n, 16, generator=g) @ a.T).reshape(n, 1, 4, 4)


def _subject() -> Subject:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return Subject(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))).eval()


def test_pca_autoencoder_round_trip_and_whitening():
    x = _data(500, torch.Generator().manual_seed(0))
    full = PCAAutoencoder(x, 16)
    # exact identities up to float32 round-off (values O(1)): full rank reconstructs, the latent is whitened
    torch.testing.assert_close(full.decode(full.encode(x)), x, rtol=0, atol=1e-4)
    z = full.encode(x)
    torch.testing.assert_close(z.mean(0), torch.zeros(16), rtol=0, atol=1e-4)
    torch.testing.assert_close(z.var(0), torch.ones(16), rtol=0, atol=1e-3)
    low = PCAAutoencoder(x, 4)
    p = low.decode(low.encode(x))
    torch.testing.assert_close(low.decode(low.encode(p)), p, rtol=0, atol=1e-4)  # a projection is idempotent


def test_fiber_loss_weight_lowers_the_fiber_loss_of_samples():
    phi = _subject()
    g = torch.Generator().manual_seed(3)
    x = _data(64, g)
    with torch.no_grad():
        h = phi(x)
    losses = []
    for lam in (0.0, 1.0):
        kw = {"latent_dim": 16, "fiber_weight": lam, "blocks": 2, "hidden": 32, "steps": 150, "batch_size": 64}
        o = make_fiber_options("conditional", kw)
        model, hist = fit_fiber_model(phi, _data, options=o, generator=torch.Generator().manual_seed(0), fit_size=512)
        if lam == 0:
            assert hist.train[-1]["nll"] < hist.train[0]["nll"]  # maximum likelihood made progress
        with torch.no_grad():
            s = model.sample(8, h, generator=torch.Generator().manual_seed(1))
        assert s.shape == (8, 64, 1, 4, 4)
        losses.append(float((phi(s.reshape(-1, 1, 4, 4)).reshape(8, 64, 3) - h).pow(2).sum(-1).mean()))
    # Deterministic (seeded init, data and samples). Over training seeds 0-2 the ratio was 0.35-0.57; the
    # threshold 0.75 leaves room for platform round-off while still failing when the fiber term has no effect.
    assert losses[1] < 0.75 * losses[0], losses


def test_training_repeats_exactly_at_a_fixed_thread_count():
    """Same generator, same thread count -> the same model, bit for bit (across thread counts float reductions
    reorder and training amplifies the difference: docs/fibers.md)."""
    phi = _subject()
    kw = {"latent_dim": 8, "fiber_weight": 0.1, "blocks": 2, "hidden": 16, "steps": 30, "batch_size": 32}
    o = make_fiber_options("conditional", kw)
    runs = []
    for _ in range(2):
        model, _ = fit_fiber_model(phi, _data, options=o, generator=torch.Generator().manual_seed(0), fit_size=256)
        with torch.no_grad():
            h = phi(_data(5, torch.Generator().manual_seed(1)))
            runs.append(model.sample(4, h, generator=torch.Generator().manual_seed(2)))
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)


def test_the_likelihood_gap_sees_a_collapsed_model_and_the_method_refuses_it():
    """A model fitted by maximum likelihood finds real data about as likely as its own samples (gap ~0); one driven
    by a heavy fiber-loss weight collapses onto near copies (large gap), and ``conditional_fibers`` refuses it."""
    phi = _subject()
    gaps = {}
    for lam in (0.0, 100.0):
        kw = {"latent_dim": 16, "fiber_weight": lam, "blocks": 2, "hidden": 32, "steps": 150, "batch_size": 64}
        o = make_fiber_options("conditional", kw)
        model, _ = fit_fiber_model(phi, _data, options=o, generator=torch.Generator().manual_seed(0), fit_size=512)
        gaps[lam] = likelihood_gap(model, phi, _data, generator=torch.Generator().manual_seed(1))
    assert abs(gaps[0.0]) < 0.3 and gaps[100.0] > 1.0, gaps  # measured -0.02 and 4.3; the refusal threshold is 1
    x = _data(3, torch.Generator().manual_seed(2))
    o = make_fiber_options("conditional", kw)
    with pytest.raises(ValueError, match="collapsed.*fiber_weight"):
        conditional_fibers(phi, x, 4, options=o, data=_data, generator=torch.Generator().manual_seed(0))
    kept = conditional_fibers(
        phi, x, 4, options=replace(o, max_collapse=math.inf), data=_data, generator=torch.Generator().manual_seed(0)
    )
    assert kept.info["likelihood_gap"] > 1.0
