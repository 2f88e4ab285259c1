"""What every amortized posterior network shares: a summary of the observation, standardization, the support.

:class:`SummaryConditioned` is the base of the conditional INN (:mod:`inference.posterior.cinn`) and of flow-matching
posterior estimation (:mod:`inference.posterior.fmpe`): a summary network ``h = phi((x - mu_x) / sigma_x)``, the
standardization of theta (``u = (t^{-1}(theta) - mu_theta) / sigma_theta``, where ``t`` maps the real line onto a
bounded prior's support, :mod:`inference.posterior.support`) and of x, stored as buffers with the weights, and the
architecture record that ``estimator.json`` keeps and gives back to the constructor.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from inference.networks.summary import build_summary
from inference.posterior.simulations import standardization
from inference.posterior.support import SupportTransform


class SummaryConditioned(nn.Module):
    """A summary network with theta / x standardization and the prior's support transform.

    Arguments:
        dim: parameter dimension D.
        element_shape: shape of one observation, or of one set element when ``set_valued``.
        set_valued: observations are sets ``(*batch, K, *element_shape)``.
        summary: summary kind (see :func:`inference.networks.summary.build_summary`).
        summary_dim: summary width.
        summary_hidden: summary hidden width.
        support: the support transform's config (:meth:`SupportTransform.config`) for a bounded prior.
    """

    def __init__(
        self,
        dim: int,
        element_shape: tuple[int, ...],
        *,
        set_valued: bool = False,
        summary: str = "mlp",
        summary_dim: int = 32,
        summary_hidden: int = 64,
        support: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.dim, self.element_shape, self.set_valued = dim, tuple(element_shape), set_valued
        # the architecture, saved with the weights (estimator.json "model") and given back to the constructor
        self.architecture: dict[str, Any] = {
            "summary": summary,
            "summary_dim": summary_dim,
            "summary_hidden": summary_hidden,
        }
        if support:  # a constrained prior: the network models u = t^{-1}(theta) (inference.posterior.support)
            self.architecture["support"] = dict(support)
        self.support = SupportTransform.from_config(support, dim)
        self.summary = build_summary(summary, self.element_shape, out_dim=summary_dim, hidden=summary_hidden)
        self.register_buffer("theta_mean", torch.zeros(dim))
        self.register_buffer("theta_std", torch.ones(dim))
        self.register_buffer("x_mean", torch.zeros(self.element_shape))
        self.register_buffer("x_std", torch.ones(self.element_shape))

    @torch.no_grad()
    def set_standardization(self, theta: torch.Tensor, x: torch.Tensor) -> None:
        """Store means and standard deviations of training theta (N, D) (of u = t^{-1}(theta) for a constrained prior)
        and x (N, [K,] *element_shape)."""
        for name, v, dims in (("theta", self.support.inverse(theta), 1), ("x", x, x.ndim - len(self.element_shape))):
            mean, std = standardization(v, dims=dims)
            getattr(self, f"{name}_mean").copy_(mean)
            getattr(self, f"{name}_std").copy_(std)

    def summarize(self, x: torch.Tensor) -> torch.Tensor:
        """h = phi(standardized x): (*batch, [K,] *element_shape) -> (*batch, C)."""
        return self.summary((x - self.x_mean) / self.x_std)

    def standardize(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(u, v)``: the standardized ``u = (v - mu) / sigma`` of ``v = t^{-1}(theta)``."""
        v = self.support.inverse(theta)
        return (v - self.theta_mean) / self.theta_std, v

    def log_abs_det(self, v: torch.Tensor) -> torch.Tensor:
        """log |d u / d theta| at ``v = t^{-1}(theta)``: what a density in u gains as a density in theta."""
        return -self.theta_std.log().sum() - self.support.log_abs_det(v)

    def to_theta(self, u: torch.Tensor) -> torch.Tensor:
        """theta = t(u sigma + mu), the inverse of :meth:`standardize`."""
        return self.support(u * self.theta_std + self.theta_mean)
