"""Fiber diagnostics (Rousselot et al. 2026, section 3): fidelity by the fiber loss, its baselines, and consistency.

    fiber loss        L_fiber(x~) = ||phi(x) - phi(x~)||_2^2                                  (eq. 3)
    nearest neighbour the fiber loss of the reference image (other than x) whose features are closest to phi(x):
                      "achieving fiber losses lower than the nearest neighbour means we can gain insights from
                      fiber samples about the subject model that we could not have gained from the dataset alone"
    augmentation      the fiber loss of randomly augmented copies of x (small shifts, brightness / contrast jitter)

Consistency on color-MNIST, where the fiber is known, is scored in :mod:`inference.evaluation.color_mnist`.

Pure functions: tensors in, tensors / floats out.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from zoo.subjects import Subject


def fiber_loss(h_tilde: torch.Tensor, h: torch.Tensor, *, feature_ndim: int = 1) -> torch.Tensor:
    """||h - h~||^2 summed over the last ``feature_ndim`` dims: h_tilde (*, *F), h broadcastable; returns (*).

    Example:
        >>> fiber_loss(torch.ones(4, 2, 3), torch.zeros(2, 3)).shape
        torch.Size([4, 2])
    """
    d = (h_tilde - h.to(h_tilde)).pow(2)
    return d.flatten(start_dim=d.ndim - feature_ndim).sum(-1)


@torch.no_grad()
def features(subject: Subject, x: torch.Tensor, *, batch_size: int = 512) -> torch.Tensor:
    """phi(x) in batches, shape (B, *F)."""
    return torch.cat([subject(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


@torch.no_grad()
def subject_fiber_loss(subject: Subject, x_tilde: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The fiber loss ||phi(x) - phi(x~)||^2 of samples x~ (n, B, *shape) for targets x (B, *shape): (n, B)."""
    n, B = x_tilde.shape[:2]
    h = features(subject, x)
    ht = features(subject, x_tilde.reshape(n * B, *x_tilde.shape[2:])).reshape(n, B, *h.shape[1:])
    return (ht - h).pow(2).flatten(2).sum(-1)


class Neighbour(NamedTuple):
    """The nearest neighbour of each target in a reference set: index (B,), image (B, *shape), fiber loss (B,)."""

    index: torch.Tensor
    image: torch.Tensor
    loss: torch.Tensor


@torch.no_grad()
def nearest_neighbour(
    subject: Subject,
    x: torch.Tensor,
    reference: torch.Tensor,
    *,
    h_reference: torch.Tensor | None = None,
    batch_size: int = 512,
) -> Neighbour:
    """The reference image with the lowest fiber loss to each target, the target itself excluded.

    Arguments:
        subject: the feature map phi.
        x: targets, shape (B, *shape).
        reference: the reference dataset, shape (M, *shape).
        h_reference: phi(reference), shape (M, *F) (computed when omitted).
        batch_size: subject batch size.

    Returns:
        a :class:`Neighbour`. Reference images equal to the target (max |difference| < 1e-6) are skipped.
    """
    h = features(subject, x, batch_size=batch_size).flatten(1)
    hr = (features(subject, reference, batch_size=batch_size) if h_reference is None else h_reference).flatten(1)
    d = (h[:, None, :] - hr[None, :, :]).pow(2).sum(-1)  # (B, M), exact squared distances (no cdist expansion)
    same = (x.flatten(1)[:, None, :] - reference.flatten(1)[None, :, :]).abs().amax(-1) < 1e-6
    d = d.masked_fill(same, float("inf"))
    loss, idx = d.min(-1)
    return Neighbour(idx, reference[idx], loss)


def augment(
    x: torch.Tensor,
    n: int,
    *,
    generator: torch.Generator | None = None,
    max_shift: int = 1,
    jitter: float = 0.1,
    data_range: tuple[float, float] = (0.0, 1.0),
) -> torch.Tensor:
    """n augmented copies of each image: shape (n, B, C, H, W) for x (B, C, H, W).

    Each copy is shifted by up to ``max_shift`` pixels in each direction (edge replication), then its brightness
    is scaled and its contrast around the image mean changed by factors in [1 - jitter, 1 + jitter], and clipped to
    ``data_range`` — light, label-preserving augmentations in the spirit of the paper's "augmented original".
    """
    B, C, H, W = x.shape
    xs = x.expand(n, B, C, H, W).reshape(n * B, C, H, W)
    pad = torch.nn.functional.pad(xs, (max_shift,) * 4, mode="replicate")
    dev = generator.device if generator is not None else x.device
    sh = torch.randint(0, 2 * max_shift + 1, (n * B, 2), generator=generator, device=dev).to(x.device)
    rows = (
        (torch.arange(H, device=x.device)[None, :] + sh[:, :1])
        .view(n * B, 1, H, 1)
        .expand(n * B, C, H, W + 2 * max_shift)
    )
    out = pad.gather(2, rows)
    cols = (torch.arange(W, device=x.device)[None, :] + sh[:, 1:]).view(n * B, 1, 1, W).expand(n * B, C, H, W)
    out = out.gather(3, cols)
    f = 1 + jitter * (2 * torch.rand(n * B, 2, generator=generator, device=dev, dtype=x.dtype).to(x.device) - 1)
    mean = out.mean((1, 2, 3), keepdim=True)
    out = (out - mean) * f[:, :1, None, None] + mean * f[:, 1:, None, None]
    return out.clamp(*data_range).reshape(n, B, C, H, W)
