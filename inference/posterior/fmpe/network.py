"""The network of flow-matching posterior estimation: a conditional vector field and its ODE.

``v(u_t, t; h)`` moves standard-normal noise ``u_0`` at ``t = 0`` to standardized parameters ``u_1`` at ``t = 1``
along ``du/dt = v``; ``h = phi(x)`` is the learned summary (:class:`~inference.posterior.conditioned.SummaryConditioned`
holds it with the standardization). Draws solve the ODE forward from noise; densities solve it backward from theta
with the divergence of ``v`` (the instantaneous change of variables), exact for the dimensions of a posterior.

The field is a residual MLP: the noisy parameters, Fourier features of t and the summary enter the first layer, and
every residual block adds a projection of (t features, summary) inside its nonlinearity. The summary's share of
those projections is computed once per observation and broadcast over its draws, so many draws per observation
cost the field's own layers only.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchdiffeq import odeint

from inference.posterior.conditioned import SummaryConditioned

SOLVERS = ("euler", "midpoint", "rk4", "dopri5")
"""ODE solvers (torchdiffeq): fixed-step ``euler`` (1 field evaluation per step), ``midpoint`` (2), ``rk4`` (4, the
3/8 rule) and the adaptive Dormand-Prince ``dopri5`` (6 per accepted step, error-controlled by rtol / atol)."""
_CHUNK = 1 << 16  # draws x observations per ODE solve: bounds memory, and the adaptive steps of one solve


class VectorFieldNet(SummaryConditioned):
    """Summary network + conditional vector field, with theta / x standardization stored as buffers.

    Arguments:
        dim, element_shape, set_valued, summary, summary_dim, summary_hidden, support: as for
            :class:`~inference.posterior.conditioned.SummaryConditioned`.
        field: the field's ``hidden`` width (default 128), residual ``blocks`` (4) and Fourier ``frequencies`` of the
            time features (8: ``sin(pi k t)``, ``cos(pi k t)``, k = 1..F, and t itself).

    Example:
        >>> import torch
        >>> m = VectorFieldNet(3, (2,), field={"hidden": 16, "blocks": 1})
        >>> m.sample(4, torch.randn(5, 2), steps=4, solver="euler").shape
        torch.Size([4, 5, 3])
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
        field: dict[str, int] | None = None,
    ) -> None:
        super().__init__(
            dim,
            element_shape,
            set_valued=set_valued,
            summary=summary,
            summary_dim=summary_dim,
            summary_hidden=summary_hidden,
            support=support,
        )
        f = {"hidden": 128, "blocks": 4, "frequencies": 8, **(field or {})}
        if set(f) != {"hidden", "blocks", "frequencies"}:
            raise TypeError(f"field takes hidden, blocks and frequencies, got {sorted(f)}")
        self.architecture["field"] = f
        hidden, blocks, frequencies = f["hidden"], f["blocks"], f["frequencies"]
        c, tf = self.summary.out_dim, 2 * frequencies + 1
        self.register_buffer("freqs", math.pi * torch.arange(1, frequencies + 1, dtype=torch.float32))
        self.inp_u, self.inp_t, self.inp_h = (
            nn.Linear(dim, hidden),
            nn.Linear(tf, hidden, bias=False),
            nn.Linear(c, hidden, bias=False),
        )
        self.lin1 = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(blocks))
        self.cond_t = nn.ModuleList(nn.Linear(tf, hidden, bias=False) for _ in range(blocks))
        self.cond_h = nn.ModuleList(nn.Linear(c, hidden, bias=False) for _ in range(blocks))
        self.lin2 = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(blocks))
        self.out = nn.Linear(hidden, dim)

    def time_features(self, t: torch.Tensor) -> torch.Tensor:
        """Fourier features of t (any shape) -> (*t.shape, 2F + 1)."""
        a = t.unsqueeze(-1) * self.freqs
        return torch.cat([t.unsqueeze(-1), a.sin(), a.cos()], -1)

    def condition_terms(self, h: torch.Tensor) -> list[torch.Tensor]:
        """The summary's share of the first layer and of every block, (*, hidden) each: once per observation."""
        return [self.inp_h(h), *(lin(h) for lin in self.cond_h)]

    def field(self, u: torch.Tensor, t: torch.Tensor, terms: list[torch.Tensor]) -> torch.Tensor:
        """v(u, t; h) for u (*, D), t broadcastable to (*) and ``terms`` from :meth:`condition_terms` broadcastable
        to (*, hidden)."""
        tf = self.time_features(t)
        y = self.inp_u(u) + self.inp_t(tf) + terms[0]
        for lin1, ct, lin2, ch in zip(self.lin1, self.cond_t, self.lin2, terms[1:], strict=True):
            y = y + lin2(F.silu(lin1(F.silu(y)) + ct(tf) + ch))
        return self.out(F.silu(y))

    def velocity(self, u: torch.Tensor, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """v(u, t; h) for u (*, D), t (*) or scalar, summaries h (*, C)."""
        return self.field(u, t, self.condition_terms(h))

    def sample_given(
        self,
        n: int,
        h: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        solver: str = "dopri5",
        steps: int = 16,
        rtol: float = 1e-5,
        atol: float = 1e-5,
    ) -> torch.Tensor:
        """Draw n samples for each summary h of shape (B, C): returns (n, B, D) (see :data:`SOLVERS`; ``steps`` for
        the fixed-step solvers, ``rtol`` / ``atol`` for ``dopri5``)."""
        b = h.shape[0]
        out = torch.empty((n, b, self.dim), device=h.device, dtype=h.dtype).normal_(generator=generator)
        if n == 0 or b == 0:
            return out
        terms = self.condition_terms(h)
        per = max(1, _CHUNK // b)
        chunks = [self.solve(out[i : i + per], terms, 0.0, 1.0, solver, steps, rtol, atol) for i in range(0, n, per)]
        return self.to_theta(torch.cat(chunks))

    def solve(
        self, u: torch.Tensor, terms: list[torch.Tensor], t0: float, t1: float, solver: str, steps: int, rtol, atol
    ) -> torch.Tensor:
        """The ODE du/dt = v(u, t; h) from ``u`` at ``t0`` to ``t1`` (standardized units; ``terms`` from
        :meth:`condition_terms`)."""
        if solver not in SOLVERS:
            raise ValueError(f"solver must be one of {', '.join(map(repr, SOLVERS))}, got {solver!r}")
        adaptive = solver == "dopri5"
        # fixed-step solvers step exactly on the grid they are given (steps + 1 points)
        grid = torch.linspace(t0, t1, 2 if adaptive else steps + 1, device=u.device, dtype=u.dtype)
        kwargs = {"rtol": rtol, "atol": atol} if adaptive else {}
        return odeint(lambda t, y: self.field(y, t, terms), u, grid, method=solver, **kwargs)[-1]

    def log_prob_given(
        self, theta: torch.Tensor, h: torch.Tensor, *, rtol: float = 1e-5, atol: float = 1e-5
    ) -> torch.Tensor:
        """log q(theta | h) of the flow's ODE (adaptive dopri5, exact divergence) for theta (*, D) and summaries h
        broadcastable to (*, C); returns (*)."""
        u, v = self.standardize(theta)
        batch = u.shape[:-1]
        u = u.reshape(-1, self.dim)
        h = h.expand(*batch, h.shape[-1]).reshape(-1, h.shape[-1])
        terms = self.condition_terms(h)
        dim = self.dim

        def augmented(t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
            with torch.enable_grad():
                y = state[0].detach().requires_grad_(True)
                vel = self.field(y, t, [term.detach() for term in terms])
                div = sum(
                    torch.autograd.grad(vel[:, i].sum(), y, retain_graph=i < dim - 1)[0][:, i] for i in range(dim)
                )
            return vel.detach(), -div.detach()

        grid = torch.tensor([1.0, 0.0], device=u.device, dtype=u.dtype)
        zero = torch.zeros(len(u), device=u.device, dtype=u.dtype)
        u0, acc = (s[-1] for s in odeint(augmented, (u, zero), grid, rtol=rtol, atol=atol, method="dopri5"))
        log_n = -0.5 * u0.square().sum(-1) - 0.5 * dim * math.log(2 * math.pi)
        return (log_n - acc).reshape(batch) + self.log_abs_det(v)

    @torch.no_grad()
    def sample(
        self, n: int, x: torch.Tensor, *, generator: torch.Generator | None = None, **solve: Any
    ) -> torch.Tensor:
        """Posterior draws for observations x of shape (*batch, [K,] *element_shape): returns (n, *batch, D)."""
        h = self.summarize(x)
        batch = h.shape[:-1]
        draws = self.sample_given(n, h.reshape(-1, h.shape[-1]), generator=generator, **solve)
        return draws.reshape(n, *batch, self.dim)
