"""The network of the conditional INN: a summary network and a conditional coupling flow, with standardization.

``q(theta | x) = N(f(u; h); 0, I) |det df/du| / prod(sigma_theta)`` with ``u = (theta - mu_theta) / sigma_theta`` and
``h = phi((x - mu_x) / sigma_x)`` the learned summary; draws are ``theta = f^{-1}(z; h) sigma_theta + mu_theta``, one
inverse pass batched over draws and observations (see :meth:`ConditionalINN.sample_given` for the fast path).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from inference.networks.conditional_flow import build_flow
from inference.posterior.conditioned import SummaryConditioned

# draws x observations per inverse pass (arm-cinn, 12 x 32): on one thread 2^15 (4.8e5 / 5.8e5 / 6.4e5 draws/s at
# 2^13 / 2^14 / 2^15; its activations take 4 MB); with a pass per Python thread 2^14 (2 threads: 7.8e5 / 9.4e5-1.03e6 /
# 8.5e5-8.8e5 at 2^13 / 2^14 / 2^15: two passes share the cache)
_CHUNK = 1 << 15
_CHUNK_THREADED = 1 << 14


class ConditionalINN(SummaryConditioned):
    """Summary network + conditional coupling flow, with theta / x standardization stored as buffers
    (:class:`~inference.posterior.conditioned.SummaryConditioned`).

    Arguments:
        dim: parameter dimension D.
        element_shape: shape of one observation, or of one set element when ``set_valued``.
        set_valued: observations are sets ``(*batch, K, *element_shape)``.
        summary: summary kind (see :func:`inference.networks.summary.build_summary`).
        summary_dim: summary width.
        summary_hidden: summary hidden width.
        flow: keyword arguments of :func:`inference.networks.conditional_flow.build_flow` (coupling, blocks, hidden,
            ...).

    Example:
        >>> import torch
        >>> m = ConditionalINN(4, (2,), summary="mlp", flow={"blocks": 2, "hidden": 16})
        >>> x = torch.randn(3, 2)
        >>> m.sample(5, x, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([5, 3, 4])
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
        flow: dict[str, Any] | None = None,
        support: dict[str, Any] | None = None,
        seed: int = 0,
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
        self.architecture["flow"] = dict(flow or {})
        self.flow = build_flow(dim, cond_dim=self.summary.out_dim, seed=seed, **(flow or {}))

    def log_prob_given(self, theta: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """log q(theta | h) for theta (*, D) and summaries h broadcastable to (*, C); returns (*)."""
        u, v = self.standardize(theta)
        h = h.expand(*u.shape[:-1], h.shape[-1])
        z, log_det = self.flow(u, h)
        log_n = -0.5 * z.square().sum(-1) - 0.5 * self.dim * math.log(2 * math.pi)
        return log_n + log_det + self.log_abs_det(v)

    def log_prob(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log q(theta | x): theta (*, D), x (*, [K,] *element_shape) -> (*)."""
        return self.log_prob_given(theta, self.summarize(x))

    def sample_given(self, n: int, h: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw n samples for each summary h of shape (B, C): returns (n, B, D).

        The latent draws fill the output, which the inverse passes then overwrite chunk by chunk (2^15 draws x
        observations each; 2^14 when threaded), so memory stays at one output tensor. On the CPU with more than one
        torch thread and gradients off, the chunks are spread over that many Python threads, each running its ops
        on one torch thread (torch releases the GIL inside ops), instead of splitting every op over the threads:
        the ops of a chunk are small (a few MB), and on 2 cores per-op splitting sampled arm-cinn 1.4x faster than
        one thread, per-chunk threads 1.5-1.7x. While they run, ``torch.get_num_threads()`` is 1 process-wide.
        """
        b = h.shape[0]
        out = torch.empty((n, b, self.dim), device=h.device, dtype=h.dtype).normal_(generator=generator)
        if n == 0 or b == 0:
            return out
        terms = self.flow.condition_terms(h)
        if torch.is_grad_enabled():  # differentiable: out-of-place chunks
            per = max(1, _CHUNK // b)
            chunks = [self.flow.sample_inverse(out[i : i + per], h, terms=terms) for i in range(0, n, per)]
            return self.to_theta(torch.cat(chunks))
        torch_threads = torch.get_num_threads()
        threaded = torch_threads > 1 and h.device.type == "cpu"
        per = max(1, (_CHUNK_THREADED if threaded else _CHUNK) // b)
        starts = range(0, n, per)

        def one(start: int) -> None:
            with torch.no_grad():  # grad mode is per thread
                chunk = out[start : start + per]
                x = self.flow.sample_inverse(chunk, h, terms=terms)  # done reading chunk before it is overwritten
                torch.mul(x, self.theta_std, out=chunk).add_(self.theta_mean)
                if not self.support.identity:
                    chunk.copy_(self.support(chunk))

        threads = min(torch_threads, len(starts)) if threaded else 1
        if threads == 1:
            for start in starts:
                one(start)
            return out
        torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(one, starts))
        finally:
            torch.set_num_threads(torch_threads)
        return out

    @torch.no_grad()
    def sample(self, n: int, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Posterior draws for observations x of shape (*batch, [K,] *element_shape): returns (n, *batch, D)."""
        h = self.summarize(x)
        batch = h.shape[:-1]
        return self.sample_given(n, h.reshape(-1, h.shape[-1]), generator=generator).reshape(n, *batch, self.dim)
