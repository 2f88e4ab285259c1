"""Summary networks: learned statistics h = phi(x) of an observation, trained jointly with a conditional INN.

The conditional INN of :mod:`inference.posterior.cinn` does not see the raw observation but a fixed-width summary
``h = phi(x)``; the summary network is trained together with the flow by back-propagating the maximum-likelihood loss
(thesis sec. 3.3, Proposition 1: the learned features maximize the mutual information between theta and h within
the network family). For set-valued observations (K i.i.d. measurements of one theta) the summary must be invariant
to the order of the set and accept any K; that is BayesFlow's permutation-invariant summary network (Radev et al.
2020; thesis sec. 3.8.6)::

    h = rho( [ mean_k phi(x_k),  log K ] )          (Zaheer et al. 2017, "Deep Sets")

The mean pool makes h independent of the order and defined for every K >= 1. Because the posterior narrows as K
grows while a mean alone cannot tell K = 1 from K = 100, ``log K`` is appended to the pooled vector before rho.

Three summaries plus a pass-through, built by name with :func:`build_summary`:

- ``"deepset"`` — :class:`DeepSet`, for sets, shape (*, K, *element_shape);
- ``"mlp"`` — :class:`MLPSummary`, a fully connected net on the flattened observation;
- ``"conv1d"`` — :class:`Conv1dSummary`, a small 1-D convolutional net for spectra, shape (*, L) or (*, C, L);
- ``"none"`` — :class:`Flatten`, the observation itself (its width is the condition width).
"""

from __future__ import annotations

import math

import torch
from torch import nn

SUMMARIES = ("deepset", "mlp", "conv1d", "none")


def _mlp(dim_in: int, dim_out: int, hidden: int, layers: int) -> nn.Sequential:
    mods: list[nn.Module] = []
    width = dim_in
    for _ in range(layers):
        mods += [nn.Linear(width, hidden), nn.SiLU()]
        width = hidden
    mods.append(nn.Linear(width, dim_out))
    return nn.Sequential(*mods)


class DeepSet(nn.Module):
    """Permutation-invariant summary of a set of i.i.d. observations of any size.

    Arguments:
        element_dim: width of one (flattened) set element.
        out_dim: summary width.
        hidden: hidden width of phi and rho.
        layers: hidden layers of phi and of rho.

    Example:
        >>> import torch
        >>> net = DeepSet(2, 8, hidden=16)
        >>> x = torch.randn(5, 10, 2)  # 5 sets of 10 two-dimensional points
        >>> h = net(x)
        >>> h.shape, torch.allclose(h, net(x[:, torch.randperm(10)]), atol=1e-6)
        (torch.Size([5, 8]), True)

    References:
        Zaheer et al., *Deep sets*, NeurIPS 2017; Radev et al., *BayesFlow: learning complex stochastic models with
        invertible neural networks*, IEEE TNNLS 2020.
    """

    def __init__(self, element_dim: int, out_dim: int, *, hidden: int = 64, layers: int = 2) -> None:
        super().__init__()
        self.element_dim, self.out_dim = element_dim, out_dim
        self.phi = _mlp(element_dim, hidden, hidden, layers)
        self.rho = _mlp(hidden + 1, out_dim, hidden, layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Summarize sets ``x`` of shape (*batch, K, element_dim) (K >= 1) into (*batch, out_dim)."""
        if x.ndim < 2 or x.shape[-1] != self.element_dim:
            raise ValueError(f"a set must have shape (*, K, {self.element_dim}), got {tuple(x.shape)}")
        k = x.shape[-2]
        if k == 0:
            raise ValueError("cannot summarize an empty set (K = 0); expected at least one element")
        pooled = self.phi(x).mean(-2)
        log_k = pooled.new_full((*pooled.shape[:-1], 1), math.log(k))
        return self.rho(torch.cat((pooled, log_k), -1))


class MLPSummary(nn.Module):
    """A fully connected summary of a fixed-size observation, flattened.

    Arguments:
        obs_shape: shape of one observation.
        out_dim: summary width.
        hidden: hidden width.
        layers: hidden layers.
    """

    def __init__(self, obs_shape: tuple[int, ...], out_dim: int, *, hidden: int = 64, layers: int = 2) -> None:
        super().__init__()
        self.obs_shape, self.out_dim = tuple(obs_shape), out_dim
        self.net = _mlp(math.prod(self.obs_shape), out_dim, hidden, layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(*batch, *obs_shape) -> (*batch, out_dim)."""
        k = len(self.obs_shape)
        return self.net(x.reshape(*x.shape[: x.ndim - k], -1))


class Conv1dSummary(nn.Module):
    """A small 1-D convolutional summary for spectra: two conv layers, then a linear read-out.

    Arguments:
        obs_shape: ``(L,)`` (one channel) or ``(C, L)``.
        out_dim: summary width.
        hidden: channels of the conv layers (and hidden width of the read-out).
        kernel_size: odd convolution width (padding keeps the length).
    """

    def __init__(self, obs_shape: tuple[int, ...], out_dim: int, *, hidden: int = 32, kernel_size: int = 3) -> None:
        super().__init__()
        if len(obs_shape) not in (1, 2) or kernel_size % 2 == 0:
            raise ValueError(f"conv1d needs obs_shape (L,) or (C, L) and an odd kernel, got {obs_shape}, {kernel_size}")
        self.obs_shape, self.out_dim = tuple(obs_shape), out_dim
        channels, length = (1, obs_shape[0]) if len(obs_shape) == 1 else obs_shape
        self.channels = channels
        pad = kernel_size // 2
        self.conv = nn.Sequential(
            nn.Conv1d(channels, hidden, kernel_size, padding=pad),
            nn.SiLU(),
            nn.Conv1d(hidden, hidden, kernel_size, padding=pad),
            nn.SiLU(),
        )
        self.head = _mlp(hidden * length, out_dim, hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(*batch, *obs_shape) -> (*batch, out_dim)."""
        k = len(self.obs_shape)
        batch = x.shape[: x.ndim - k]
        h = self.conv(x.reshape(-1, self.channels, self.obs_shape[-1]))
        return self.head(h.flatten(1)).reshape(*batch, self.out_dim)


class Flatten(nn.Module):
    """No learned summary: the flattened observation, (*batch, *obs_shape) -> (*batch, prod(obs_shape))."""

    def __init__(self, obs_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.obs_shape = tuple(obs_shape)
        self.out_dim = math.prod(self.obs_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = len(self.obs_shape)
        return x.reshape(*x.shape[: x.ndim - k], self.out_dim)


def build_summary(
    kind: str, obs_shape: tuple[int, ...], *, out_dim: int, hidden: int = 64, layers: int = 2
) -> nn.Module:
    """Build a summary network by name.

    Arguments:
        kind: one of :data:`SUMMARIES`.
        obs_shape: shape of one observation; for ``"deepset"`` the shape of one set *element*.
        out_dim: summary width (ignored by ``"none"``).
        hidden: hidden width.
        layers: hidden layers (MLP-based summaries).

    Returns:
        a module mapping observations to (*batch, module.out_dim).
    """
    if kind == "deepset":
        return DeepSet(math.prod(obs_shape), out_dim, hidden=hidden, layers=layers)
    if kind == "mlp":
        return MLPSummary(obs_shape, out_dim, hidden=hidden, layers=layers)
    if kind == "conv1d":
        return Conv1dSummary(obs_shape, out_dim, hidden=hidden)
    if kind == "none":
        return Flatten(obs_shape)
    raise ValueError(f"summary must be one of {', '.join(SUMMARIES)}, got {kind!r}")
