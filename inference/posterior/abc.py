"""Rejection ABC (approximate Bayesian computation), threshold and quantile modes.

The simplest honest posterior method, and the baseline every learned method must beat (thesis, appendix B.4):
draw theta_i ~ p(theta), simulate x_i = s(theta_i), and keep theta_i whose simulation lands near the observation,

    d(x_i, x_o) = || (x_i - x_o) / sigma_x ||_2        (Euclidean on x standardized by the prior-predictive std)

- **threshold** mode: accept d < eps until N draws are accepted (the thesis's inverse-kinematics ABC);
- **quantile** mode: run exactly ``budget`` = N / q simulations and keep the N nearest (the thesis's tissue ABC).

As eps -> 0 (or q -> 0 with the budget -> infinity) the accepted draws follow p(theta | x_o) exactly; at finite eps
they follow p(theta | d(x, x_o) < eps), a slightly wider posterior.

The simulation pass is chunked (memory is bounded by ``chunk`` x number of observations, whatever the budget) and
batched over observations: each chunk of simulations is scored against every observation at once.

References:
    Ardizzone, *Conditional Invertible Generative Models for Supervised Problems*, PhD thesis, app. B.4.
    Pritchard et al., *Population growth of human Y chromosomes*, Mol. Biol. Evol. 1999 (rejection ABC).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

import simulators
from inference.estimator_dir import EstimatorFiles, save_estimator
from inference.methods import register_method
from simulators import Simulator, validate_observation

DEFAULT_BUDGET = 100_000
"""Simulations per posterior query when ``fit`` is given no budget."""


@dataclass(frozen=True)
class ABCOptions:
    """Options of rejection ABC.

    Attributes:
        mode: ``"quantile"`` (keep the N nearest of ``budget`` simulations) or ``"threshold"`` (accept d < eps until
            N are accepted, at most ``budget`` simulations).
        eps: acceptance distance in standardized units. Required in threshold mode; in quantile mode an optional
            ceiling (draws farther than eps are never accepted).
        standardize: divide each observation coordinate by its prior-predictive standard deviation.
        pilot: simulations used by ``fit`` to estimate that standard deviation.
        chunk: simulations per vectorized pass (bounds memory).
    """

    mode: str = "quantile"
    eps: float | None = None
    standardize: bool = True
    pilot: int = 10_000
    chunk: int = 65_536

    def __post_init__(self) -> None:
        if self.mode not in ("quantile", "threshold"):
            raise ValueError(f"ABC mode must be 'quantile' or 'threshold', got {self.mode!r}")
        if self.mode == "threshold" and self.eps is None:
            raise ValueError("ABC threshold mode needs eps (e.g. --option eps=0.05)")
        if self.eps is not None and not (self.eps > 0 and math.isfinite(self.eps)):
            raise ValueError(f"ABC eps must be a positive finite distance, got {self.eps!r}")
        if self.pilot < 2 or self.chunk < 1:
            raise ValueError(f"ABC pilot must be >= 2 and chunk >= 1, got pilot={self.pilot}, chunk={self.chunk}")


class RejectionABC:
    """Rejection ABC for one simulator: not amortized, every posterior query runs its own simulations.

    Arguments:
        simulator: the forward model.
        options: :class:`ABCOptions`.
        budget: simulations per posterior query (quantile mode: exactly; threshold mode: at most).
        x_scale: standardization scale per observation coordinate, shape ``obs_shape``.
        progress: show a progress bar (simulations per second and acceptances).

    Example:
        >>> import torch, simulators, inference
        >>> gm = simulators.get("gaussian-mixture")
        >>> g = torch.Generator().manual_seed(0)
        >>> est = inference.fit(gm, method="abc", budget=20_000, generator=g, progress=False)
        >>> x_o = torch.nn.functional.one_hot(torch.tensor([0, 1]), 8).float()  # two observations
        >>> est.posterior(x_o).sample(100, generator=g).shape
        torch.Size([100, 2, 2])

    References:
        Ardizzone, PhD thesis, appendix B.4.
    """

    method = "abc"

    def __init__(
        self,
        simulator: Simulator,
        options: ABCOptions,
        budget: int,
        x_scale: torch.Tensor,
        *,
        progress: bool = True,
    ) -> None:
        self.simulator = simulator
        self.options = options
        self.budget = int(budget)
        self.x_scale = x_scale
        self.progress = progress

    def posterior(self, x_o: torch.Tensor) -> ABCPosterior:
        """The ABC posterior for observations ``x_o`` of shape ``(*batch, *obs_shape)``."""
        return ABCPosterior(self, validate_observation(self.simulator, x_o)[0])

    def save(self, directory: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write ``estimator.json`` and the standardization scale (``weights.safetensors``)."""
        return save_estimator(
            directory,
            self,
            tensors={"x_scale": self.x_scale},
            overwrite=overwrite,
        )


class ABCPosterior:
    """Rejection-ABC posterior for a batch of observations; ``sample`` runs the simulations."""

    has_log_prob = False

    def __init__(self, estimator: RejectionABC, x_o: torch.Tensor) -> None:
        self.estimator = estimator
        self.x_o = x_o

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` accepted parameters per observation, shape ``(n, *batch, D)``."""
        return self.sample_with_stats(n, generator=generator)[0]

    def log_prob(self, theta: torch.Tensor) -> torch.Tensor:
        raise ValueError("rejection ABC has no posterior density (has_log_prob is False); use sample()")

    def sample_with_stats(
        self, n: int, *, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Draw ``n`` accepted parameters per observation and report how they were accepted.

        Returns:
            ``theta`` of shape ``(n, *batch, D)`` and a dict with ``distance`` ``(n, *batch)`` (each draw's
            standardized distance to its observation), ``eps`` ``(*batch)`` (the largest accepted distance, i.e.
            the effective tolerance) and ``simulations`` ``(*batch)`` (simulations spent).

        Raises:
            ValueError: when fewer than ``n`` draws are accepted within the budget (the observation is far from
                anything the simulator produces, or eps / budget are too small), or when ``n`` exceeds the budget.
        """
        est, opts = self.estimator, self.estimator.options
        sim = est.simulator
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        if opts.mode == "quantile" and n > est.budget:
            raise ValueError(f"ABC quantile mode keeps n={n} of budget={est.budget} simulations; raise --budget")
        obs_shape = tuple(sim.obs_shape)
        batch = self.x_o.shape[: self.x_o.ndim - len(obs_shape)]
        device, dtype = self.x_o.device, self.x_o.dtype
        scale = est.x_scale.to(device=device, dtype=dtype).reshape(-1)
        x_o = self.x_o.reshape(-1, scale.numel()) / scale  # (B, M) standardized
        n_obs = x_o.shape[0]
        eps = opts.eps

        if opts.mode == "quantile":
            best_d = torch.full((n_obs, 0), math.inf, device=device, dtype=dtype)
            best_theta = None
        else:
            acc_theta: list[list[torch.Tensor]] = [[] for _ in range(n_obs)]
            acc_d: list[list[torch.Tensor]] = [[] for _ in range(n_obs)]
            counts = torch.zeros(n_obs, dtype=torch.long, device=device)
        lo = hi = None  # per-coordinate range of everything simulated, to name far-away observations
        done = 0
        t0 = time.perf_counter()
        bar = tqdm(total=est.budget, desc="ABC", unit="sim", unit_scale=True, disable=not est.progress)
        # Bound the (observations x chunk) distance matrix to ~2^23 entries (32 MB in float32).
        chunk = max(1024, min(opts.chunk, 2**23 // n_obs))
        while done < est.budget:
            m = min(chunk, est.budget - done)
            theta = simulators.sample_prior(sim.prior, m, generator=generator).to(device=device, dtype=dtype)
            x = sim.simulate(theta, generator=generator).reshape(m, -1).to(dtype) / scale  # (m, M)
            done += m
            lo = x.amin(0) if lo is None else torch.minimum(lo, x.amin(0))
            hi = x.amax(0) if hi is None else torch.maximum(hi, x.amax(0))
            # Direct differences, not the matrix-product expansion: that loses ~1e-3 to cancellation at small d.
            d = torch.cdist(x_o, x, compute_mode="donot_use_mm_for_euclid_dist")  # (B, m)
            if eps is not None:
                d = torch.where(d < eps, d, torch.full_like(d, math.inf))
            if opts.mode == "quantile":
                cand_d = torch.cat((best_d, d), 1)
                k = min(n, cand_d.shape[1])
                best_d, idx = torch.topk(cand_d, k, dim=1, largest=False)  # (B, k)
                # Gather the kept parameters without materializing a (B, k + m, D) pool.
                k_prev = 0 if best_theta is None else best_theta.shape[1]
                new = theta[(idx - k_prev).clamp(min=0)]  # (B, k, D)
                if best_theta is not None:
                    old = best_theta.gather(1, idx.clamp(max=k_prev - 1).unsqueeze(-1).expand_as(new))
                    new = torch.where((idx < k_prev).unsqueeze(-1), old, new)
                best_theta = new
                accepted = int(torch.isfinite(best_d).sum(1).min())
            else:
                mask = torch.isfinite(d)
                for b in torch.nonzero((counts < n) & mask.any(1)).flatten().tolist():
                    sel = mask[b].nonzero().flatten()[: n - int(counts[b])]
                    acc_theta[b].append(theta[sel])
                    acc_d[b].append(d[b, sel])
                    counts[b] += sel.numel()
                accepted = int(counts.min())
            elapsed = max(time.perf_counter() - t0, 1e-9)
            bar.update(m)
            bar.set_postfix(accepted=f"{accepted}/{n}", sims_per_s=f"{done / elapsed:.3g}")
            if opts.mode == "threshold" and accepted >= n:
                break
        bar.close()

        if opts.mode == "quantile":
            got = torch.isfinite(best_d).sum(1)
        else:
            got = counts
        short = torch.nonzero(got < n).flatten()
        if short.numel():
            self._raise_too_few(int(short[0]), int(got[short[0]]), n, done, x_o, lo, hi, scale, batch)
        # Quantile mode without eps always keeps n draws; an observation outside the range of everything simulated
        # would get the n least-bad draws, a silently wrong posterior. Refuse it instead.
        outside = ((x_o < lo) | (x_o > hi)).any(1).nonzero().flatten()
        if opts.mode == "quantile" and eps is None and outside.numel():
            self._raise_too_few(int(outside[0]), 0, n, done, x_o, lo, hi, scale, batch, near=True)
        if opts.mode == "quantile":
            theta_out, d_out = best_theta, best_d  # (B, n, D), (B, n) sorted by distance
            sims = torch.full((n_obs,), done, device=device)
        else:
            theta_out = torch.stack([torch.cat(t)[:n] for t in acc_theta])
            d_out = torch.stack([torch.cat(t)[:n] for t in acc_d])
            sims = torch.full((n_obs,), done, device=device)
        # Random order within each observation (quantile mode sorts by distance; thinning should not see that).
        perm = torch.argsort(torch.rand(n_obs, n, generator=generator).to(device), dim=1)
        theta_out = theta_out.gather(1, perm.unsqueeze(-1).expand(-1, -1, theta_out.shape[-1]))
        d_out = d_out.gather(1, perm)
        D = theta_out.shape[-1]
        stats = {
            "distance": d_out.T.reshape(n, *batch),
            "eps": d_out.amax(1).reshape(batch),
            "simulations": sims.reshape(batch),
        }
        return theta_out.transpose(0, 1).reshape(n, *batch, D), stats

    def _raise_too_few(self, b, got, n, done, x_o, lo, hi, scale, batch, near: bool = False) -> None:
        where = f" for observation {b}" if len(batch) else ""
        outside = ((x_o[b] < lo) | (x_o[b] > hi)).nonzero().flatten()
        hint = ""
        if outside.numel():
            i = int(outside[0])
            val = float(x_o[b, i] * scale[i])
            hint = (
                f"; its coordinate {i} = {val:.4g} lies outside the range "
                f"[{float(lo[i] * scale[i]):.4g}, {float(hi[i] * scale[i]):.4g}] of all {done} simulations"
            )
        eps = self.estimator.options.eps
        what = (
            f"ABC found no simulation near {f'observation {b}' if len(batch) else 'the observation'}"
            if near
            else f"ABC accepted only {got} of {n} draws{where}"
        )
        raise ValueError(
            f"{what} within {done} simulations (eps={eps}){hint}; "
            "increase --budget or eps (--option eps=...), or check that the simulator can produce this observation"
        )


def fit_abc(
    simulator: Simulator,
    *,
    budget: int | None,
    options: ABCOptions,
    generator: torch.Generator | None = None,
    progress: bool = True,
) -> RejectionABC:
    """ "Fit" rejection ABC: estimate the prior-predictive scale of x from ``options.pilot`` simulations."""
    budget = DEFAULT_BUDGET if budget is None else budget
    scale = torch.ones(tuple(simulator.obs_shape))
    if options.standardize:
        theta = simulators.sample_prior(simulator.prior, options.pilot, generator=generator)
        x = simulator.simulate(theta, generator=generator)
        scale = x.std(0)
        # A coordinate that never varies (e.g. an unused one-hot label) keeps unit scale.
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return RejectionABC(simulator, options, budget, scale, progress=progress)


def load_abc(files: EstimatorFiles) -> RejectionABC:
    """Rebuild a saved :class:`RejectionABC`."""
    if "x_scale" not in files.tensors:
        raise ValueError(f"{files.directory} lacks the tensor 'x_scale'; the ABC estimator directory is corrupt")
    budget = files.budget if files.budget is not None else DEFAULT_BUDGET
    return RejectionABC(files.simulator, files.options, budget, files.tensors["x_scale"])


register_method("abc", fit_abc, load_abc, ABCOptions)
