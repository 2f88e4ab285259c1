"""Out-of-distribution image sets for color-MNIST, made offline: what a prior or classifier trained on color-MNIST
(tied colours) has never seen. Used by ``benchmarks/ood.py``, ``benchmarks/classifiers.py`` and
``zoo diagnose --subject ... --ood``.

- ``untied``: the digit colour drawn independently of the background (the simulator's ``ood`` variant);
- ``rotated``: the digits turned by 90 degrees, tied colours;
- ``upsampled``: scikit-learn's 8x8 digits upsampled to fill the whole 16x16 frame (no background border), tied;
- ``noise``: uniform noise images;
- ``constant``: flat images of a background colour c0 ~ p(c0), no digit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import simulators
from simulators.color_mnist import colorize, digit_color, sample_colors

OOD_SETS = ("untied", "rotated", "upsampled", "noise", "constant")


def color_mnist_sets(
    n: int, seed: int = 0, *, digits: torch.Tensor | None = None
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The in-distribution set (key ``"in-distribution"``) and every OOD set, n images each (n, 3, 16, 16) in
    [0, 1], and the digit labels of the in-distribution images (n,).

    Arguments:
        n: images per set.
        seed: the seed of every draw.
        digits: indices into the embedded digits to draw from (default: all; e.g. a held-out split).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n!r}")
    g = torch.Generator().manual_seed(seed)
    cm = simulators.get("color-mnist")
    pool = torch.arange(len(cm.digits)) if digits is None else torch.as_tensor(digits)
    pick = pool[torch.randint(len(pool), (n,), generator=g)]
    grey, c0 = cm.digits[pick], sample_colors((n,), generator=g)
    from sklearn.datasets import load_digits

    small = torch.tensor(load_digits().images, dtype=torch.float32)[pick] / 16.0
    full = F.interpolate(small[:, None], size=(16, 16), mode="bilinear", align_corners=True)[:, 0].clamp(0, 1)
    sets = {
        "in-distribution": colorize(grey, c0),
        "untied": colorize(grey, c0, digit_color(sample_colors((n,), generator=g))),
        "rotated": colorize(torch.rot90(grey, 1, (-2, -1)), c0),
        "upsampled": colorize(full, c0),
        "noise": torch.rand(n, 3, 16, 16, generator=g),
        "constant": c0[:, :, None, None].expand(n, 3, 16, 16).clone(),
    }
    return sets, cm.labels[pick]


__all__ = ["OOD_SETS", "color_mnist_sets"]
