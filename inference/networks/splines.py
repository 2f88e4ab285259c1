"""A conditional rational-quadratic spline coupling block: normflows' block, wrapped once so no normflows type leaks.

The wrapper gives it zoo's conventions: batched over any leading dimensions, an optional condition ``c`` of shape
(*, C), ``forward`` maps data -> latent (normflows' ``inverse``) and ``inverse`` maps latent -> data, each returning
``(out, log|det|)``. Used by the conditional flows in ``inference/`` (cINN, conditional fiber model).
"""

from __future__ import annotations

import torch
from normflows.flows import CoupledRationalQuadraticSpline
from torch import nn

SPLINE_BOUND = 5.0  # spline interval [-B, B] in standardized units; beyond it the tails are linear (identity)


class SplineCoupling(nn.Module):
    """A conditional rational-quadratic spline coupling block (normflows), batched over any leading dims.

    Arguments:
        dim: width (>= 2).
        cond_dim: condition width.
        hidden: hidden width of the residual subnetwork.
        layers: residual blocks of the subnetwork.
        bins: spline bins.
        reverse_mask: transform the other half of the dimensions.
    """

    def __init__(
        self, dim: int, *, cond_dim: int, hidden: int = 128, layers: int = 2, bins: int = 8, reverse_mask: bool = False
    ) -> None:
        super().__init__()
        self.dim = dim
        self.block = CoupledRationalQuadraticSpline(
            dim,
            layers,
            hidden,
            num_context_channels=cond_dim or None,
            num_bins=bins,
            tails="linear",
            tail_bound=SPLINE_BOUND,
            reverse_mask=reverse_mask,
        )
        self.block.prqct.transform_net.final_layer.zero_init = True  # start as the identity

    def _call(self, fn, x: torch.Tensor, c: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        batch = x.shape[:-1]
        flat_c = None if c is None else c.expand(*batch, c.shape[-1]).reshape(-1, c.shape[-1])
        y, log_det = fn(x.reshape(-1, self.dim), flat_c)
        return y.reshape(x.shape), log_det.reshape(batch)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self._call(self.block.inverse, x, c)

    def inverse(self, z: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self._call(self.block.forward, z, c)
