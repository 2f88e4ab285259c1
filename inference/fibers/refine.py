"""Latent refinement of fiber samples (Rousselot et al. 2026, appendix A, algorithm 1).

A fiber sample x~ that has not contracted far enough onto the fiber is refined by gradient descent on the fiber
loss in the latent space of an autoencoder (E, D), never on raw pixels by default (pixel-space descent makes
adversarial, single-pixel changes):

    z_0 = E(x~);   z_{i+1} = z_i - eta grad_z ||h - phi(D(z_i))||^2   (i < N);   x^ = D(z_N)

``space="pixel"`` descends on x~ directly, for the comparison of the paper's figure 12. ``clip`` keeps the refined
samples valid inputs: D(z) is clipped to the data range inside the objective and in the result, so the returned
fiber losses are those of the returned images.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Protocol

import torch

from inference.fibers.registry import FiberDraws
from zoo.subjects import Subject


class Autoencoder(Protocol):
    """Anything with ``encode(x) -> z`` and ``decode(z) -> x`` (differentiable)."""

    def encode(self, x: torch.Tensor) -> torch.Tensor: ...

    def decode(self, z: torch.Tensor) -> torch.Tensor: ...


def latent_refine(
    x_tilde: torch.Tensor,
    subject: Subject,
    h: torch.Tensor,
    *,
    autoencoder: Autoencoder | None = None,
    steps: int = 100,
    lr: float = 1e-2,
    space: str = "latent",
    clip: tuple[float, float] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Refine fiber samples by gradient descent on the fiber loss (algorithm 1).

    Arguments:
        x_tilde: fiber samples, shape (B, *shape), in the subject's input space.
        subject: the feature map phi.
        h: target features phi(x), shape (B, *F).
        autoencoder: (E, D) whose latent space is searched; required for ``space="latent"``.
        steps: gradient steps N (the paper: ~100).
        lr: the step size eta (Adam, per coordinate).
        space: ``"latent"`` (default) or ``"pixel"``.
        clip: the data range (lo, hi) that D(z) is clipped to (``None``: no clipping).

    Returns:
        the refined samples (B, *shape) and the fiber loss before every step and after the last, (steps + 1, B).
    """
    if space not in ("latent", "pixel"):
        raise ValueError(f"space must be 'latent' or 'pixel', got {space!r}")
    if space == "latent" and autoencoder is None:
        raise ValueError("latent refinement needs an autoencoder (encode / decode); pass autoencoder=...")
    raw = autoencoder.decode if space == "latent" else (lambda v: v)

    def decode(v: torch.Tensor) -> torch.Tensor:
        return raw(v) if clip is None else raw(v).clamp(*clip)

    with torch.no_grad():
        z = autoencoder.encode(x_tilde) if space == "latent" else x_tilde.clone()  # z_0 = E(x~)
    z.requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    h = h.detach()
    losses = []
    for _ in range(steps):
        loss = (subject(decode(z)) - h).flatten(1).pow(2).sum(1)  # L_i = ||h - phi(D(z_i))||^2
        losses.append(loss.detach())
        (z.grad,) = torch.autograd.grad(loss.sum(), z)
        opt.step()
    with torch.no_grad():
        x_hat = decode(z)
        losses.append((subject(x_hat) - h).flatten(1).pow(2).sum(1))
    return x_hat.detach(), torch.stack(losses)


@dataclass(frozen=True)
class RefineOptions:
    """Settings of the refinement of fiber samples in a PCA latent of the reference set (appendix A).

    Attributes:
        steps: gradient steps N (the paper: ~100).
        lr: the step size (Adam, per latent coordinate).
        latent_dim: principal components of the reference set kept (96 reconstructs 16x16 color-MNIST to RMSE ~0.01).
    """

    steps: int = 100
    lr: float = 0.05
    latent_dim: int = 96

    def __post_init__(self) -> None:
        for name in ("steps", "latent_dim"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"refine {name} must be an integer >= 1, got {v!r}")
        if isinstance(self.lr, bool) or not isinstance(self.lr, int | float) or not 0 < self.lr < math.inf:
            raise ValueError(f"refine lr must be a positive finite number, got {self.lr!r}")


def refine_draws(
    draws: FiberDraws,
    subject: Subject,
    x: torch.Tensor,
    *,
    reference: torch.Tensor,
    options: RefineOptions = RefineOptions(),
    clip: tuple[float, float] | None = None,
) -> FiberDraws:
    """Refine the samples of a fiber method in the latent of a PCA autoencoder of ``reference`` (never pixels).

    Arguments:
        draws: the samples (n, B, *shape) and their losses.
        subject: the feature map phi.
        x: the targets (B, *shape).
        reference: the reference images the PCA autoencoder is fitted to, (M, *shape).
        options: :class:`RefineOptions`.
        clip: the data range the decoded samples are clipped to.

    Returns:
        the refined draws; their ``info`` records the settings and the mean fiber loss before refinement.
    """
    if not 1 <= options.latent_dim <= min(len(reference), x[0].numel()):
        raise ValueError(
            f"refine latent_dim must be in [1, {min(len(reference), x[0].numel())}] for this reference set, "
            f"got {options.latent_dim}"
        )
    from inference.fibers.conditional import PCAAutoencoder

    n = draws.samples.shape[0]
    with torch.no_grad():
        h = subject(x)
    refined, losses = latent_refine(
        draws.samples.reshape(n * len(x), *x.shape[1:]),
        subject,
        h.repeat(n, *([1] * (h.ndim - 1))),
        autoencoder=PCAAutoencoder(reference, options.latent_dim),
        steps=options.steps,
        lr=options.lr,
        clip=clip,
    )
    info = {
        **draws.info,
        "refine": {**asdict(options), "clip": None if clip is None else list(clip)},
        "fiber_loss_before_refine": float(draws.fiber_loss.mean()),
    }
    return FiberDraws(refined.reshape(draws.samples.shape), losses[-1].reshape(n, -1), draws.traces, draws.gamma, info)
