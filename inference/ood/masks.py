"""Masks of the inpainting score: alternating checkerboards over images, alternating index blocks over vectors.

A mask is 1 where the input is *kept* (known to the inpainter) and 0 where the prior fills it in. LMD (Liu, Zhou &
Weinberger, in *Geometries of learning*, Algorithm 1 and Table 2) masks with an alternating N x N checkerboard that
covers half the image and is flipped from one attempt to the next, so that every pixel is inpainted in every other
attempt.
"""

from __future__ import annotations

import torch


def default_block(shape: tuple[int, ...]) -> int:
    """The block size for inputs of ``shape``: a sixteenth of the smallest spatial side (at least 1).

    LMD uses 8 x 8 blocks on 28- and 32-pixel images; its Table 2 shows the best size depends on what differs
    (8 x 8 best on CIFAR10 -> SVHN, 16 x 16 on MNIST -> KMNIST, where shapes differ). On color-MNIST's 16 x 16
    images, whose OOD sets differ also in colour relations that every local patch shows, the smallest blocks
    separate best: ROC-AUC against untied colours 0.919 / 0.864 with blocks 1 / 2 and >= 0.956 on the other sets
    with block 1 (100 images per set, r = 10, 50 steps; ``python benchmarks/ood.py --blocks 1,2,4`` prints the
    table, docs/ood.md quotes it). A sixteenth of the side gives 1 there and 2 on 32-pixel images; pass ``block``
    for your data after running that ablation on it.
    """
    spatial = shape[1:] if len(shape) == 3 else shape[-1:]
    return max(1, min(spatial) // 16)


def checkerboard(
    shape: tuple[int, ...], block: int, *, flip: bool = False, device: torch.device | str | None = None
) -> torch.Tensor:
    """An alternating block mask of ``shape`` (1 = kept, 0 = inpainted).

    Arguments:
        shape: one input's shape: (C, H, W) images get an N x N checkerboard over (H, W), shared by the channels;
            vectors (D,) and channel-first series (C, L) get alternating blocks of N indices along the last axis
            (the 1-D form for spectra).
        block: N, the side of a block in pixels (or indices).
        flip: swap kept and inpainted blocks (the next attempt's mask).
        device: where to build the mask.

    Returns:
        a float tensor of ``shape`` with values in {0, 1}.

    Raises:
        ValueError: ``block`` < 1, or a shape that is not (D,), (C, L) or (C, H, W).

    Example:
        >>> checkerboard((1, 4, 4), 2)[0]
        tensor([[1., 1., 0., 0.],
                [1., 1., 0., 0.],
                [0., 0., 1., 1.],
                [0., 0., 1., 1.]])
    """
    if int(block) < 1:
        raise ValueError(f"the mask block size must be >= 1, got {block!r}")
    if len(shape) not in (1, 2, 3):
        raise ValueError(f"masks are made for vectors (D,), series (C, L) or images (C, H, W), got shape {shape}")
    if len(shape) == 3:
        _, h, w = shape
        rows = torch.arange(h, device=device) // block
        cols = torch.arange(w, device=device) // block
        keep = (rows[:, None] + cols[None, :]) % 2 == 0
    else:
        keep = (torch.arange(shape[-1], device=device) // block) % 2 == 0
    keep = keep ^ bool(flip)
    return keep.to(torch.float32).expand(shape).contiguous()
