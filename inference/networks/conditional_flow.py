"""The conditional flow of the cINN: coupling blocks with a condition input, permutations, optional ActNorm.

Two block types, both conditioned on a summary ``c`` of shape (*, C):

- ``"affine"``: :class:`inference.networks.coupling.AffineCoupling` (soft-clamped GLOW block, condition concatenated to
  every subnetwork input; thesis eqs. 3.10-3.13), reused as is;
- ``"spline"``: normflows' ``CoupledRationalQuadraticSpline`` (monotone rational-quadratic splines on [-B, B],
  linear tails; Durkan et al. 2019), whose residual subnetworks take the condition as context. It is wrapped
  once, in :mod:`inference.networks.splines`, so that no normflows type leaves that module.

Every block is followed by a fixed random :class:`inference.networks.coupling.Permutation`; with ``actnorm`` an
:class:`ActNorm` precedes it. All layers share one call signature, ``layer(x, c) -> (y, log|det dy/dx|)``, and an
``inverse`` with the same signature.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from inference.networks.coupling import AffineCoupling, Permutation, soft_clamp
from inference.networks.splines import SplineCoupling


class ActNorm(nn.Module):
    """Learned per-dimension affine map ``y = x * exp(s) + b``, starting at the identity (Kingma & Dhariwal 2018).

    The data-dependent initialization of GLOW is unnecessary here: theta is already standardized.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(dim))
        self.shift = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return x * self.log_scale.exp() + self.shift, self.log_scale.sum().expand(x.shape[:-1])

    def inverse(self, y: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return (y - self.shift) * (-self.log_scale).exp(), (-self.log_scale.sum()).expand(y.shape[:-1])


class ConditionalFlow(nn.Module):
    """A stack of layers ``(ActNorm?, coupling, permutation) x blocks`` with a shared condition.

    Arguments:
        layers: the layers, each with ``forward(x, c)`` and ``inverse(y, c)`` returning ``(out, log_det)``.
    """

    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z = f(x; c): x (*, D), c (*, C) -> z (*, D) and log|det dz/dx| (*)."""
        log_det = x.new_zeros(x.shape[:-1])
        for layer in self.layers:
            x, ld = layer(x, c)
            log_det = log_det + ld
        return x, log_det

    def inverse(self, z: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x = f^{-1}(z; c): z (*, D), c (*, C) -> x (*, D) and log|det dx/dz| (*)."""
        log_det = z.new_zeros(z.shape[:-1])
        for layer in reversed(self.layers):
            z, ld = layer.inverse(z, c)
            log_det = log_det + ld
        return z, log_det

    def condition_terms(self, c: torch.Tensor) -> dict[int, tuple]:
        """The per-observation parts of :meth:`sample_inverse`, computed once for many chunks of draws.

        Arguments:
            c: one condition per observation, shape (B, C).

        Returns:
            for each affine block (keyed by its index in ``layers``), for its two subnetworks, the contiguous weight
            ``W_h`` of the block input and the per-observation bias ``W_c c + b`` of the first layer, shape (B, H).
        """
        terms = {}
        for i, layer in enumerate(self.layers):
            if isinstance(layer, AffineCoupling):
                terms[i] = tuple(_first_layer_terms(net, layer, c) for net in (layer.net1, layer.net2))
        return terms

    def sample_inverse(
        self, z: torch.Tensor, c: torch.Tensor, *, terms: dict[int, tuple] | None = None
    ) -> torch.Tensor:
        """x = f^{-1}(z; c) for many draws per condition, without log-determinants (the sampling fast path).

        Arguments:
            z: latent draws, shape (n, B, D).
            c: one condition per observation, shape (B, C), shared by its n draws.
            terms: :meth:`condition_terms` of ``c``, when the caller samples ``c`` in several chunks.

        Returns:
            x, shape (n, B, D); equal to ``inverse(z, c.expand(n, B, C))[0]`` up to float round-off.

        For affine blocks the condition's share of each subnetwork's first layer, ``W_c c + b``, is computed once
        per observation and broadcast over the draws, instead of concatenating ``c`` to every draw: with many
        draws per observation that removes most of the work of the first layer. A permutation followed (in the
        inverse direction) by an affine block is folded into the block's split, so the permuted vector is never
        written out.
        """
        if terms is None:
            terms = self.condition_terms(c)
        grads = torch.is_grad_enabled() and any(p.requires_grad for p in self.parameters())
        if not grads and all(isinstance(layer, (AffineCoupling, Permutation, ActNorm)) for layer in self.layers):
            return self._sample_inverse_by_rows(z, terms)
        perm = None  # pending permutation: the current vector is z[..., perm]
        for i in reversed(range(len(self.layers))):
            layer = self.layers[i]
            if isinstance(layer, Permutation):
                perm = layer.inv if perm is None else perm[layer.inv]
            elif isinstance(layer, AffineCoupling):
                if perm is None:
                    u1, u2 = z[..., : layer.d1], z[..., layer.d1 :]
                else:
                    u1, u2 = z.index_select(-1, perm[: layer.d1]), z.index_select(-1, perm[layer.d1 :])
                    perm = None
                z = _affine_inverse_shared(layer, u1, u2, terms[i])
            else:
                if perm is not None:
                    z, perm = z[..., perm], None
                z, _ = layer.inverse(z, c.expand(*z.shape[:-1], c.shape[-1]))
        return z if perm is None else z[..., perm]

    def _sample_inverse_by_rows(self, z: torch.Tensor, terms: dict[int, tuple]) -> torch.Tensor:
        """:meth:`sample_inverse` of an affine flow (with or without ActNorm) without gradients, on the (D, rows)
        transpose of the draws.

        Every coordinate of the draws is then one contiguous row: a block's halves are row slices, each
        subnetwork's output layer is computed transposed (``W a^T + b``, shape (2 d, rows)), and the elementwise
        steps of the coupling run on contiguous rows instead of 2-wide strided columns of (rows, D) tensors.
        """
        n, b, dim = z.shape
        state = z.reshape(n * b, dim).T.contiguous()  # (D, R), R = n * b, row r = draw r // b of observation r % b
        out_buf = state.new_empty(2 * dim, n * b)  # the output layers' (2 d, R) results, one block at a time
        perm = None  # pending permutation: the current vector is state[perm]
        for i in reversed(range(len(self.layers))):
            layer = self.layers[i]
            if isinstance(layer, Permutation):
                perm = layer.inv if perm is None else perm[layer.inv]
                continue
            if isinstance(layer, ActNorm):
                if perm is not None:
                    state, perm = state.index_select(0, perm), None
                state = (state - layer.shift[:, None]).mul_(torch.exp(-layer.log_scale)[:, None])
                continue
            u = state if perm is None else state.index_select(0, perm)
            u1, u2 = u[: layer.d1], u[layer.d1 :]
            (w1, b1), (w2, b2) = terms[i]
            new = torch.empty_like(state)
            x2 = _undo_by_rows(layer, layer.net2, u1, u2, w2, b2, (n, b), out_buf, new[layer.d1 :])
            _undo_by_rows(layer, layer.net1, x2, u1, w1, b1, (n, b), out_buf, new[: layer.d1])
            state, perm = new, None
        if perm is not None:
            state = state.index_select(0, perm)
        return state.T.reshape(n, b, dim)


_OUTER_MAX = 4  # block inputs up to this width enter the first layer as rank-1 updates instead of a matmul
# oneDNN's linear with the bias and ReLU fused into the matrix product (the op torch.compile uses on CPU): 20-35%
# faster than F.linear + relu_ for the (16 x 1000, 32-64) activations of the arm's sampling path here
_FUSED_LINEAR = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _linear(a: torch.Tensor, layer: nn.Linear, relu: bool) -> torch.Tensor:
    """``layer(a)``, then ReLU if ``relu`` (in place; no gradients); by oneDNN for float32 on the CPU if available."""
    if _FUSED_LINEAR and a.dtype == torch.float32 and a.device.type == "cpu" and layer.bias is not None:
        return torch.ops.mkldnn._linear_pointwise(a, layer.weight, layer.bias, "relu" if relu else "none", [], "")
    out = F.linear(a, layer.weight, layer.bias)
    return out.relu_() if relu else out


def _first_layer_terms(
    net: torch.nn.Sequential, block: AffineCoupling, c: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(W_h^T, W_c c + b)`` of a subnetwork whose first layer sees ``cat(h, c)`` (``W = [W_h, W_c]``)."""
    first = net[0]
    d = first.in_features - block.cond_dim
    bias = torch.addmm(first.bias, c, first.weight[:, d:].T) if block.cond_dim else first.bias
    return first.weight[:, :d].T.contiguous(), bias


def _first_layer(h: torch.Tensor, w_t: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``h W_h^T + bias`` for draws h (n, B, d) and per-observation bias (B, H).

    A block input of a few columns (the arm's d = 2) is a poor matrix product (inner size d) plus a copy of the
    strided input: as d rank-1 updates ``bias + sum_j h_j w_j`` it ran 1.6-2.9x faster here (16 x 1000 draws, H = 64).
    """
    d = w_t.shape[0]
    if d > _OUTER_MAX:
        return F.linear(h, w_t.T).add_(bias)
    a = torch.addcmul(bias, h[..., :1], w_t[0])
    for j in range(1, d):
        a.addcmul_(h[..., j : j + 1], w_t[j])
    return a


def _affine_inverse_shared(block: AffineCoupling, u1: torch.Tensor, u2: torch.Tensor, terms: tuple) -> torch.Tensor:
    """``AffineCoupling.inverse`` of ``[u1, u2]`` with the condition term of the first layers precomputed.

    The block's subnetworks see ``cat(h, c)``; splitting the first weight matrix as ``W = [W_h, W_c]`` gives
    ``W cat(h, c) + b = W_h h + (W_c c + b)``, the bracket being per observation (``terms``, from
    :func:`_first_layer_terms` for ``net1`` and ``net2``). Differentiable: without gradients, affine flows take
    :meth:`ConditionalFlow._sample_inverse_by_rows` instead.
    """

    def undo(net: nn.Sequential, h: torch.Tensor, u: torch.Tensor, w_t: torch.Tensor, bias: torch.Tensor):
        a = _first_layer(h, w_t, bias)
        for module in list(net)[1:]:
            a = module(a)
        s, t = a.chunk(2, -1)
        return (u - t) * torch.exp(-soft_clamp(s, block.clamp))

    (w1, b1), (w2, b2) = terms
    x2 = undo(block.net2, u1, u2, w2, b2)
    return torch.cat((undo(block.net1, x2, u1, w1, b1), x2), -1)


def _undo_by_rows(
    block: AffineCoupling,
    net: nn.Sequential,
    h: torch.Tensor,
    u: torch.Tensor,
    w_t: torch.Tensor,
    bias: torch.Tensor,
    shape: tuple[int, int],
    out_buf: torch.Tensor,
    out: torch.Tensor,
) -> torch.Tensor:
    """One half of :func:`_affine_inverse_shared` on transposed draws: ``(u - t) exp(-clamp(s))`` into ``out``.

    Without gradients: oneDNN's fused linear + bias + ReLU for the hidden layers, the soft clamp in its sigmoid form
    ``c tanh(s / c) = c (2 sigmoid(2 s / c) - 1)`` (torch's tanh took 3.2 ns per float here, its sigmoid under 1),
    and in-place elementwise steps.

    ``h`` (d, R) feeds the subnetwork ``net`` whose first-layer terms are ``(w_t, bias)``; ``u`` and ``out`` are
    (d', R); ``shape`` is ``(n, B)`` with ``R = n B``; ``out_buf`` (>= 2 d', R) holds the output layer's result.
    """
    n, b = shape
    a = _first_layer(h.T.view(n, b, -1), w_t, bias).view(n * b, -1)  # each input column h[j] is a contiguous row
    modules = list(net)[1:-1]
    i = 0
    while i < len(modules):
        module = modules[i]
        if isinstance(module, nn.Linear):
            relu = i + 1 < len(modules) and isinstance(modules[i + 1], nn.ReLU)
            a = _linear(a, module, relu)
            i += 1 + relu
            continue
        a = a.relu_() if isinstance(module, nn.ReLU) else module(a)
        i += 1
    last = net[-1]
    d = u.shape[0]
    o = torch.addmm(last.bias.unsqueeze(1), last.weight, a.T, out=out_buf[: 2 * d])  # (2 d, R): s rows, then t rows
    s, t = o[:d], o[d:]
    c = block.clamp
    scale = torch.mul(s, 2.0 / c).sigmoid_().mul_(-2.0 * c).add_(c).exp_()  # exp(-c tanh(s / c))
    return torch.sub(u, t, out=out).mul_(scale)


def build_flow(
    dim: int,
    *,
    cond_dim: int,
    coupling: str = "affine",
    blocks: int = 6,
    hidden: int = 128,
    layers: int = 2,
    clamp: float = 2.0,
    bins: int = 8,
    actnorm: bool = False,
    seed: int = 0,
) -> ConditionalFlow:
    """Build a :class:`ConditionalFlow`.

    Arguments:
        dim: parameter dimension D (>= 2).
        cond_dim: condition (summary) width C.
        coupling: ``"affine"`` or ``"spline"``.
        blocks: coupling blocks.
        hidden: subnetwork hidden width.
        layers: subnetwork hidden layers (affine) or residual blocks (spline).
        clamp: soft clamp of the affine log-scales.
        bins: spline bins.
        actnorm: an :class:`ActNorm` before every block.
        seed: seed of the fixed permutations (saved as buffers too).
    """
    if coupling not in ("affine", "spline"):
        raise ValueError(f"coupling must be 'affine' or 'spline', got {coupling!r}")
    g = torch.Generator().manual_seed(seed)
    mods: list[nn.Module] = []
    for i in range(blocks):
        if actnorm:
            mods.append(ActNorm(dim))
        if coupling == "affine":
            block = AffineCoupling(dim, cond_dim=cond_dim, hidden=hidden, layers=layers, clamp=clamp)
        else:
            block = SplineCoupling(
                dim, cond_dim=cond_dim, hidden=hidden, layers=layers, bins=bins, reverse_mask=i % 2 == 1
            )
        mods += [block, Permutation(dim, generator=g)]
    return ConditionalFlow(mods)
