"""Constrained priors for methods that work on the real line: a bijection from R^D onto the prior's support box.

A flow (cINN, INN) models unbounded variables; a Gamma, Beta, LogNormal or Uniform prior is not. The trained methods
therefore learn the posterior of ``u = t^{-1}(theta)`` and return ``theta = t(u)``, with ``t`` the bijection of
``torch.distributions.biject_to(prior.support)`` per coordinate (the box of :func:`simulators.priors.support_bounds`):

    theta_d = u_d                                     (real line)
    theta_d = lo_d + exp(u_d)                         (lower bound)
    theta_d = hi_d - exp(-u_d)                        (upper bound)
    theta_d = lo_d + (hi_d - lo_d) sigmoid(u_d)       (interval)

so draws always lie inside the support, and densities pick up the log-Jacobian:
``log q(theta) = log q_u(t^{-1}(theta)) - log|det dt/du|``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import simulators
from simulators.priors import support_bounds


class SupportTransform(nn.Module):
    """``t: R^D -> box(lo, hi)``, coordinate by coordinate (see the module docstring).

    Arguments:
        lo, hi: the bounds, shape (D,); ``-inf`` / ``inf`` for open sides.

    Example:
        >>> t = SupportTransform(torch.tensor([0.0, -math.inf]), torch.tensor([1.0, math.inf]))
        >>> u = torch.randn(5, 2)
        >>> torch.allclose(t.inverse(t(u)), u, atol=1e-5)
        True
    """

    def __init__(self, lo: torch.Tensor, hi: torch.Tensor) -> None:
        super().__init__()
        # bounds given as numbers live on the CPU (also when the module is built on the meta device, to check a saved
        # config against its weights: zoo.bounds); .to(device) moves them with the module
        device = lo.device if isinstance(lo, torch.Tensor) else "cpu"
        lo, hi = (torch.as_tensor(b, dtype=torch.float32, device=device) for b in (lo, hi))
        if lo.shape != hi.shape or lo.ndim != 1 or bool((lo >= hi).any()):
            raise ValueError(f"support bounds must be (D,) with lo < hi, got {lo.tolist()} and {hi.tolist()}")
        self.register_buffer("lo", lo, persistent=False)
        self.register_buffer("hi", hi, persistent=False)
        fin_lo, fin_hi = torch.isfinite(lo), torch.isfinite(hi)
        self.register_buffer("interval", fin_lo & fin_hi, persistent=False)
        self.register_buffer("lower", fin_lo & ~fin_hi, persistent=False)
        self.register_buffer("upper", ~fin_lo & fin_hi, persistent=False)

    @property
    def identity(self) -> bool:
        """Whether every coordinate is on the real line (``t`` is the identity)."""
        return not bool((self.interval | self.lower | self.upper).any())

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """theta = t(u), shapes (*, D)."""
        if self.identity:
            return u
        lo, hi = self.lo.to(u), self.hi.to(u)
        theta = torch.where(self.lower, torch.nan_to_num(lo, neginf=0.0) + u.exp(), u)
        theta = torch.where(self.upper, torch.nan_to_num(hi, posinf=0.0) - (-u).exp(), theta)
        width = torch.nan_to_num(hi - lo, posinf=1.0)
        return torch.where(self.interval, torch.nan_to_num(lo, neginf=0.0) + width * torch.sigmoid(u), theta)

    def inverse(self, theta: torch.Tensor) -> torch.Tensor:
        """u = t^{-1}(theta), shapes (*, D); theta strictly inside the support (points on the edge are nudged in)."""
        if self.identity:
            return theta
        lo, hi = torch.nan_to_num(self.lo.to(theta), neginf=0.0), torch.nan_to_num(self.hi.to(theta), posinf=0.0)
        tiny = torch.finfo(theta.dtype).tiny
        u = torch.where(self.lower, torch.log((theta - lo).clamp_min(tiny)), theta)
        u = torch.where(self.upper, -torch.log((hi - theta).clamp_min(tiny)), u)
        eps = torch.finfo(theta.dtype).eps
        p = ((theta - lo) / torch.where(self.interval, hi - lo, torch.ones_like(hi))).clamp(eps, 1 - eps)
        return torch.where(self.interval, torch.logit(p), u)

    def log_abs_det(self, u: torch.Tensor) -> torch.Tensor:
        """log|det dt/du| at u (*, D), summed over D: shape (*)."""
        if self.identity:
            return u.new_zeros(u.shape[:-1])
        width = torch.nan_to_num(self.hi.to(u) - self.lo.to(u), posinf=1.0)
        term = torch.where(self.lower, u, torch.zeros_like(u))
        term = torch.where(self.upper, -u, term)
        term = torch.where(self.interval, width.log() - F.softplus(u) - F.softplus(-u), term)
        return term.sum(-1)

    def config(self) -> dict[str, Any]:
        """JSON-ready bounds (``None`` for infinite sides)."""
        return {
            "lo": [None if math.isinf(v) else v for v in self.lo.tolist()],
            "hi": [None if math.isinf(v) else v for v in self.hi.tolist()],
        }

    @classmethod
    def from_config(cls, config: dict[str, Any] | None, dim: int) -> SupportTransform:
        """Rebuild from :meth:`config` (``None``: the real line, the identity)."""
        if not config:
            return cls([-math.inf] * dim, [math.inf] * dim)
        lo = [-math.inf if v is None else float(v) for v in config["lo"]]
        hi = [math.inf if v is None else float(v) for v in config["hi"]]
        return cls(lo, hi)

    @classmethod
    def for_simulator(cls, simulator: object) -> SupportTransform:
        """The transform onto the support of ``simulator.prior`` (the identity for a prior on the real line)."""
        d = len(simulator.param_names)
        prior = getattr(simulator, "prior", None) if getattr(simulator, "available", True) else None
        if prior is None:
            return cls.from_config(None, d)
        try:
            lo, hi = support_bounds(simulators.priors.as_prior(prior))
        except ValueError:  # a support that is not a box (a simplex, ...): the method models theta as it is
            return cls.from_config(None, d)
        return cls(lo, hi)
