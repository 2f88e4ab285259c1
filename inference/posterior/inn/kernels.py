"""Maximum mean discrepancy loss with multi-scale inverse multiquadratic kernels (the inverse INN's L_z and L_x).

For samples ``x_1..x_n ~ p`` and ``y_1..y_m ~ q`` the (biased, V-statistic) estimate is::

    MMD^2(p, q) = mean_ij k(x_i, x_j) + mean_ij k(y_i, y_j) - 2 mean_ij k(x_i, y_j)        (Gretton et al. 2012)

The kernel is a sum of generalized inverse multiquadratics, one term per ``(C, a)`` pair::

    k(x, x') = sum_(C, a)  C^a ((C + ||x - x'||^2) / a)^(-a)  =  sum_(C, a)  a^a (1 + ||x - x'||^2 / C)^(-a)

(the form of the released code of Ardizzone et al. 2019). ``(h^2, 1)`` is the thesis's inverse multiquadratic
``1 / (1 + ||(x - x') / h||^2)`` (sec. 4.1.3): heavier-tailed than a Gaussian, so outliers still get gradients.
:func:`imq` builds the pairs for a list of widths ``h``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

Kernel = Sequence[tuple[float, float]]
"""A multi-scale kernel: ``(C, a)`` pairs, see the module docstring."""


def imq(*widths: float) -> tuple[tuple[float, float], ...]:
    """The thesis's inverse multiquadratic ``sum_h 1 / (1 + d^2 / h^2)`` as ``(C, a)`` pairs ``(h^2, 1)``.

    Example:
        >>> imq(0.2, 1.0)
        ((0.04000000000000001, 1.0), (1.0, 1.0))
    """
    if not widths or any(not h > 0 for h in widths):
        raise ValueError(f"kernel widths must be positive numbers, got {widths}")
    return tuple((float(h) ** 2, 1.0) for h in widths)


def squared_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pairwise squared Euclidean distances: (n, d), (m, d) -> (n, m), clamped at 0."""
    xx = (x * x).sum(-1)
    yy = (y * y).sum(-1)
    return (xx.unsqueeze(-1) + yy.unsqueeze(-2) - 2.0 * x @ y.transpose(-1, -2)).clamp_min(0.0)


def kernel_matrix(d2: torch.Tensor, kernel: Kernel) -> torch.Tensor:
    """Evaluate the multi-scale kernel on squared distances ``d2`` (any shape)."""
    out = torch.zeros_like(d2)
    logs: dict[float, torch.Tensor] = {}
    for c, a in kernel:
        if not (c > 0 and a > 0):
            raise ValueError(f"kernel pairs (C, a) need C > 0 and a > 0, got {(c, a)}")
        # a^a (1 + d2 / C)^(-a); integer and half exponents avoid the (slow) general power
        base = 1.0 + d2 / c
        if a == 1.0:
            term = base.reciprocal()
        elif a == 2.0:
            term = 4.0 * base.reciprocal().square()
        elif a == 0.5:
            term = 0.5**0.5 * base.rsqrt()
        else:
            if c not in logs:
                logs[c] = torch.log(base)
            term = a**a * torch.exp(-a * logs[c])
        out = out + term
    return out


def mmd_loss(
    x: torch.Tensor,
    y: torch.Tensor,
    kernel: Kernel,
    *,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Biased squared MMD between two sample sets.

    Arguments:
        x: samples of p, shape (n, d).
        y: samples of q, shape (m, d).
        kernel: ``(C, a)`` pairs (see the module docstring; :func:`imq` for the thesis's kernel).
        weights: optional (n, n) weights multiplying the element matrix ``K_xx + K_yy - 2 K_xy`` before the mean
            (needs ``n == m``; the observation-distance weighting of the reference tissue setup).

    Returns:
        a scalar tensor, >= 0 up to rounding without weights.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(500, 2, generator=g)
        >>> bool(mmd_loss(x, x, imq(1.0)) == 0)
        True
    """
    if x.ndim != 2 or y.ndim != 2 or x.shape[-1] != y.shape[-1]:
        raise ValueError(f"mmd_loss needs (n, d) and (m, d) sample sets, got {tuple(x.shape)} and {tuple(y.shape)}")
    kxx = kernel_matrix(squared_distances(x, x), kernel)
    kyy = kernel_matrix(squared_distances(y, y), kernel)
    kxy = kernel_matrix(squared_distances(x, y), kernel)
    if weights is None:
        return kxx.mean() + kyy.mean() - 2.0 * kxy.mean()
    if x.shape[0] != y.shape[0] or weights.shape != kxx.shape:
        raise ValueError(f"weights need equal sample counts and shape (n, n), got {tuple(weights.shape)}")
    return (weights * (kxx + kyy - 2.0 * kxy)).mean()
