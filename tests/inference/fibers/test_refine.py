"""Latent refinement: zero steps is the autoencoder round trip; refinement lowers the fiber loss."""

from __future__ import annotations

import pytest
import torch

from inference.fibers.refine import latent_refine
from zoo import Subject


class _LinearAE(torch.nn.Module):
    """An exactly invertible autoencoder: z = A x (flattened), x = A^-1 z."""

    def __init__(self, d: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.a = torch.eye(d) + 0.1 * torch.randn(d, d, generator=g)

    def encode(self, x):
        return x.flatten(1) @ self.a.T

    def decode(self, z):
        return torch.linalg.solve(self.a, z.T).T.reshape(-1, 1, 4, 4)


def _subject() -> Subject:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return Subject(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3), torch.nn.Tanh()))


def test_refinement_lowers_the_fiber_loss_in_latent_and_pixel_space():
    g = torch.Generator().manual_seed(1)
    x, x_tilde = torch.rand(5, 1, 4, 4, generator=g), torch.rand(5, 1, 4, 4, generator=g)
    phi, ae = _subject(), _LinearAE(16)
    h = phi(x).detach()
    same, l0 = latent_refine(x_tilde, phi, h, autoencoder=ae, steps=0)
    torch.testing.assert_close(same, x_tilde, rtol=0, atol=1e-5)  # the round trip D(E(x)) (float32 solve)
    for space in ("latent", "pixel"):
        out, losses = latent_refine(x_tilde, phi, h, autoencoder=ae, steps=100, lr=1e-2, space=space)
        assert losses.shape == (101, 5)
        # a smooth 3-feature target reachable in 16 dims: 100 Adam steps cut the loss by > 10x for every sample
        assert bool((losses[-1] < 0.1 * losses[0]).all()), losses[[0, -1]]
    with pytest.raises(ValueError, match="autoencoder"):
        latent_refine(x_tilde, phi, h)


def test_clipped_refinement_returns_valid_inputs_with_their_own_losses():
    g = torch.Generator().manual_seed(2)
    x, x_tilde = torch.rand(5, 1, 4, 4, generator=g), torch.rand(5, 1, 4, 4, generator=g)
    phi, ae = _subject(), _LinearAE(16)
    h = phi(x).detach()
    out, losses = latent_refine(x_tilde, phi, h, autoencoder=ae, steps=50, lr=0.2, clip=(0.0, 1.0))
    # lr 0.2 overshoots the unit range without the clip; with it every pixel stays inside (exact bound)
    free, _ = latent_refine(x_tilde, phi, h, autoencoder=ae, steps=50, lr=0.2)
    assert float(free.min()) < 0.0 or float(free.max()) > 1.0
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    # the last reported loss is the subject's loss on the returned images (same computation, float32)
    torch.testing.assert_close(losses[-1], (phi(out) - h).pow(2).sum(-1), rtol=1e-5, atol=1e-6)
