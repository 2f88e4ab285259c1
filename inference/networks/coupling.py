"""Affine coupling blocks with soft clamping, fixed permutations and fully connected subnetworks.

The building blocks of zoo's invertible networks (the inverse INN of :mod:`inference.posterior.inn`, and conditional
INNs, which pass a condition ``c`` that is concatenated to every subnetwork input). One GLOW-style affine coupling block
(thesis eqs. 2.25/2.26 and 3.10) splits ``x = [x1, x2]`` and computes::

    u1 = x1 * exp(s1(x2, c)) + t1(x2, c)
    u2 = x2 * exp(s2(u1, c)) + t2(u1, c)          log|det J| = sum(s1) + sum(s2)

with the log-scales softly clamped, ``s~ = alpha * tanh(s / alpha)`` (thesis eq. 3.13), so that no single block can
blow up the scale: at Adam learning rates of 1e-3 the clamp is "strictly necessary" (thesis app. A.2.2). Between
blocks a fixed random permutation mixes the dimensions (thesis sec. 3.5; FrEIA ``PermuteRandom``).

Why not normflows: its ``AffineCouplingBlock`` has no condition input and maps scales through ``exp`` or a sigmoid,
not the tanh soft clamp, and its ``Permute`` draws from torch's global generator. The block here is the small
piece that was missing; it stays below 200 lines and has no dependency beyond torch.
"""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "elu": nn.ELU, "tanh": nn.Tanh, "silu": nn.SiLU}


def soft_clamp(s: torch.Tensor, clamp: float) -> torch.Tensor:
    """``clamp * tanh(s / clamp)``: slope 1 at 0, bounded by ``±clamp`` (thesis eq. 3.13)."""
    return clamp * torch.tanh(s / clamp)


def mlp(dim_in: int, dim_out: int, *, hidden: int, layers: int, activation: str = "relu") -> nn.Sequential:
    """A fully connected subnetwork with ``layers`` hidden layers of width ``hidden``.

    Arguments:
        dim_in: input width.
        dim_out: output width.
        hidden: hidden width.
        layers: number of hidden layers (>= 1).
        activation: one of :data:`ACTIVATIONS`.

    Returns:
        ``Linear -> act -> ... -> Linear``; the last layer starts at zero so that every block starts as the identity
        (a common, stable initialization; the reference code uses small random weights instead).
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
    if layers < 1 or hidden < 1:
        raise ValueError(f"need layers >= 1 and hidden >= 1, got layers={layers}, hidden={hidden}")
    mods: list[nn.Module] = []
    width = dim_in
    for _ in range(layers):
        mods += [nn.Linear(width, hidden), ACTIVATIONS[activation]()]
        width = hidden
    last = nn.Linear(width, dim_out)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    mods.append(last)
    return nn.Sequential(*mods)


class AffineCoupling(nn.Module):
    """GLOW-style affine coupling block with soft clamping and an optional condition.

    Arguments:
        dim: width of the transformed vector (>= 2).
        cond_dim: width of the condition ``c`` concatenated to each subnetwork input (0: unconditional).
        hidden: hidden width of the subnetworks.
        layers: hidden layers per subnetwork.
        clamp: soft-clamp bound ``alpha`` of the log-scales.
        activation: subnetwork activation.

    Example:
        >>> import torch
        >>> block = AffineCoupling(4, hidden=16, layers=2)
        >>> u, log_det = block(torch.randn(10, 4))
        >>> u.shape, log_det.shape
        (torch.Size([10, 4]), torch.Size([10]))
    """

    def __init__(
        self,
        dim: int,
        *,
        cond_dim: int = 0,
        hidden: int = 128,
        layers: int = 2,
        clamp: float = 2.0,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        if dim < 2:
            raise ValueError(f"a coupling block needs dim >= 2, got {dim}; pad the input")
        if not clamp > 0:
            raise ValueError(f"clamp must be > 0, got {clamp}")
        self.dim, self.cond_dim, self.clamp = dim, cond_dim, float(clamp)
        self.d1 = dim // 2
        self.d2 = dim - self.d1
        kw = {"hidden": hidden, "layers": layers, "activation": activation}
        self.net1 = mlp(self.d2 + cond_dim, 2 * self.d1, **kw)  # s1, t1 from x2
        self.net2 = mlp(self.d1 + cond_dim, 2 * self.d2, **kw)  # s2, t2 from u1
        # zero at reset_parameters (inference.networks.init): the block then starts as the identity
        self.net1[-1].zero_init = self.net2[-1].zero_init = True

    def _coefficients(self, net: nn.Module, h: torch.Tensor, c: torch.Tensor | None):
        if self.cond_dim:
            if c is None or c.shape[-1] != self.cond_dim:
                raise ValueError(f"this block needs a condition of shape (*, {self.cond_dim})")
            h = torch.cat((h, c), -1)
        s, t = net(h).chunk(2, -1)
        return soft_clamp(s, self.clamp), t

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``u = f(x; c)``.

        Arguments:
            x: input, shape (*, dim).
            c: condition, shape (*, cond_dim), or ``None`` for an unconditional block.

        Returns:
            ``u`` of shape (*, dim) and ``log|det du/dx|`` of shape (*).
        """
        x1, x2 = x[..., : self.d1], x[..., self.d1 :]
        s1, t1 = self._coefficients(self.net1, x2, c)
        u1 = x1 * torch.exp(s1) + t1
        s2, t2 = self._coefficients(self.net2, u1, c)
        u2 = x2 * torch.exp(s2) + t2
        return torch.cat((u1, u2), -1), s1.sum(-1) + s2.sum(-1)

    def inverse(self, u: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``x = f^{-1}(u; c)``; returns ``x`` (*, dim) and ``log|det dx/du|`` (*)."""
        u1, u2 = u[..., : self.d1], u[..., self.d1 :]
        s2, t2 = self._coefficients(self.net2, u1, c)
        x2 = (u2 - t2) * torch.exp(-s2)
        s1, t1 = self._coefficients(self.net1, x2, c)
        x1 = (u1 - t1) * torch.exp(-s1)
        return torch.cat((x1, x2), -1), -(s1.sum(-1) + s2.sum(-1))


class Permutation(nn.Module):
    """A fixed random permutation of the last dimension (log-determinant 0).

    Arguments:
        dim: width.
        generator: source of the permutation (the permutation is also a buffer, so it is saved with the weights).
    """

    def __init__(self, dim: int, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        perm = torch.randperm(dim, generator=generator)
        self.register_buffer("perm", perm)
        self.register_buffer("inv", torch.argsort(perm))

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return x[..., self.perm], x.new_zeros(x.shape[:-1])

    def inverse(self, u: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return u[..., self.inv], u.new_zeros(u.shape[:-1])


class CouplingFlow(nn.Module):
    """A stack of affine coupling blocks, each followed by a fixed random permutation.

    Arguments:
        dim: width of the flow.
        blocks: number of coupling blocks.
        cond_dim: condition width (0: unconditional).
        hidden: subnetwork hidden width.
        layers: hidden layers per subnetwork.
        clamp: soft clamp of the log-scales.
        activation: subnetwork activation.
        seed: seed of the permutations (they are also saved as buffers).

    Example:
        >>> import torch
        >>> flow = CouplingFlow(4, blocks=3, hidden=16).double()
        >>> x = torch.randn(5, 4, dtype=torch.float64)
        >>> z, log_det = flow(x)
        >>> torch.allclose(flow.inverse(z)[0], x)
        True
    """

    def __init__(
        self,
        dim: int,
        *,
        blocks: int = 4,
        cond_dim: int = 0,
        hidden: int = 128,
        layers: int = 2,
        clamp: float = 2.0,
        activation: str = "relu",
        seed: int = 0,
    ) -> None:
        super().__init__()
        if blocks < 1:
            raise ValueError(f"blocks must be >= 1, got {blocks}")
        g = torch.Generator().manual_seed(seed)
        mods: list[nn.Module] = []
        for _ in range(blocks):
            mods.append(
                AffineCoupling(dim, cond_dim=cond_dim, hidden=hidden, layers=layers, clamp=clamp, activation=activation)
            )
            mods.append(Permutation(dim, generator=g))
        self.layers = nn.ModuleList(mods)
        self.dim, self.cond_dim = dim, cond_dim

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``z = f(x; c)``: (*, dim) -> (*, dim), with ``log|det dz/dx|`` of shape (*)."""
        log_det = x.new_zeros(x.shape[:-1])
        for layer in self.layers:
            x, ld = layer(x, c)
            log_det = log_det + ld
        return x, log_det

    def inverse(self, z: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``x = f^{-1}(z; c)``: (*, dim) -> (*, dim), with ``log|det dx/dz|`` of shape (*)."""
        log_det = z.new_zeros(z.shape[:-1])
        for layer in reversed(self.layers):
            z, ld = layer.inverse(z, c)
            log_det = log_det + ld
        return z, log_det
