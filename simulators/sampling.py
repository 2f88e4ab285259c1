"""Reproducible prior draws through an explicit ``torch.Generator``.

``torch.distributions`` and pyro sample from the global RNG and take no generator, but zoo never seeds globally.
:func:`sample_prior` draws from the distribution families zoo's priors are built of, with the caller's generator:
a distribution whose own ``sample`` accepts ``generator=`` is used as is; Normal, Uniform, MultivariateNormal,
transformed distributions (LogNormal, ...), Independent, MixtureSameFamily (and anything univariate with an ``icdf``)
are sampled by transforming generator draws; anything else (Gamma, Beta, pyro's own distributions) by its own
sampler, seeded from the generator inside a fork of the global random state (which is left as it was).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable

import numpy as np
import torch
from torch.distributions import (
    Distribution,
    Independent,
    MixtureSameFamily,
    MultivariateNormal,
    Normal,
    TransformedDistribution,
    Uniform,
    constraints,
)


def sample_prior(
    prior: Distribution, sample_shape: tuple[int, ...] | int = (), *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draw ``prior.sample(sample_shape)`` using ``generator``.

    Arguments:
        prior: a torch or pyro distribution.
        sample_shape: leading sample shape (an int means ``(n,)``).
        generator: the source of randomness (``None``: torch's default generator).

    Returns:
        a tensor of shape ``(*sample_shape, *prior.batch_shape, *prior.event_shape)``.

    Example:
        >>> import torch, simulators
        >>> arm = simulators.get("arm")
        >>> a = simulators.sample_prior(arm.prior, 3, generator=torch.Generator().manual_seed(0))
        >>> b = simulators.sample_prior(arm.prior, 3, generator=torch.Generator().manual_seed(0))
        >>> bool((a == b).all()), tuple(a.shape)
        (True, (3, 4))
    """
    shape = (sample_shape,) if isinstance(sample_shape, int) else tuple(sample_shape)
    with torch.no_grad():
        return _sample(prior, torch.Size(shape), generator)


def _sample(d: Distribution, shape: torch.Size, g: torch.Generator | None) -> torch.Tensor:
    if "generator" in inspect.signature(d.sample).parameters:
        return d.sample(shape, generator=g)
    base = getattr(d, "base_dist", None)
    if isinstance(d, Independent) or (base is not None and type(d).__name__ == "Independent"):
        return _sample(d.base_dist, shape, g)
    full = shape + d.batch_shape + d.event_shape
    if isinstance(d, Normal):
        return d.loc + d.scale * torch.randn(full, generator=g, device=d.loc.device, dtype=d.loc.dtype)
    if isinstance(d, Uniform):
        u = torch.rand(full, generator=g, device=d.low.device, dtype=d.low.dtype)
        return d.low + (d.high - d.low) * u
    if isinstance(d, MixtureSameFamily):
        probs = d.mixture_distribution.probs
        k = probs.shape[-1]
        n = int(torch.Size(shape).numel())
        flat = probs.reshape(-1, k)
        idx = torch.multinomial(flat, n, replacement=True, generator=g).T.reshape(tuple(shape) + tuple(d.batch_shape))
        comp = _sample(d.component_distribution, shape, g)  # (*shape, *batch, k, *event)
        ev = len(d.event_shape)
        index = idx.reshape(*idx.shape, 1, *([1] * ev)).expand(*idx.shape, 1, *d.event_shape)
        return comp.gather(len(shape) + len(d.batch_shape), index).squeeze(len(shape) + len(d.batch_shape))
    if isinstance(d, MultivariateNormal):
        eps = torch.randn(full, generator=g, device=d.loc.device, dtype=d.loc.dtype)
        return d.loc + (d.scale_tril @ eps.unsqueeze(-1)).squeeze(-1)
    if isinstance(d, TransformedDistribution):  # LogNormal, ...: transform draws of the base distribution
        x = _sample(d.base_dist, shape, g)
        for t in d.transforms:
            x = t(x)
        return x
    if d.event_shape == torch.Size() and _has_icdf(d):
        probe = d.mean if d.mean.is_floating_point() else torch.zeros(())
        u = torch.rand(full, generator=g, device=probe.device, dtype=probe.dtype)
        return d.icdf(u.clamp(1e-7, 1 - 1e-7))
    if g is None:
        return d.sample(shape)
    # anything else (Gamma, Beta, Dirichlet, pyro's own, ...): its own sampler, seeded from the caller's generator in a
    # fork of the global random state, so the draws are a function of the generator and the global state is untouched
    seed = int(torch.randint(0, 2**62, (), generator=g))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return d.sample(shape)


def _has_icdf(d: Distribution) -> bool:
    try:
        d.icdf(torch.tensor(0.5))
    except (NotImplementedError, AttributeError, TypeError, ValueError):
        return False
    return True


def chunk_generator(seed: int, index: int, device: str | torch.device = "cpu") -> torch.Generator:
    """The generator of chunk ``index`` under base ``seed``: independent streams per chunk, from ``(seed, index)`` only.

    Simulation tables (``zoo simulate``) draw chunk ``i`` from it, and so do the simulated test cases of
    :func:`simulate_cases` (case ``i`` is a chunk of one row), so results do not depend on how work is split.
    """
    state = np.random.SeedSequence([int(seed), int(index)]).generate_state(2, dtype=np.uint32)
    return torch.Generator(device=device).manual_seed(int(state[0]) << 31 ^ int(state[1]))


def simulate_cases(
    simulator: object, cases: int | Iterable[int], *, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Simulated test cases: the one scheme behind ``zoo infer --test-index K`` and ``zoo diagnose``.

    Case ``i`` draws theta from the prior and simulates x with its own generator, :func:`chunk_generator`
    ``(seed, i)``, so case ``K`` is the same observation whichever command asks for it and however many cases are
    drawn around it.

    Arguments:
        simulator: the forward model.
        cases: a number N (cases 0 .. N - 1) or the case indices.
        seed: base seed of the test set.

    Returns:
        theta (N, D) and x (N, *obs_shape).

    Example:
        >>> import simulators
        >>> arm = simulators.get("arm")
        >>> theta, x = simulate_cases(arm, 5, seed=0)
        >>> bool((simulate_cases(arm, [3], seed=0)[1] == x[3]).all())
        True
    """
    indices = range(cases) if isinstance(cases, int) else list(cases)
    if any(isinstance(i, bool) or not isinstance(i, int | np.integer) or i < 0 for i in indices):
        raise ValueError(f"test case indices must be integers >= 0, got {list(indices)[:5]}")
    if len(indices) == 0:
        raise ValueError("no test cases asked for; give a number >= 1 or a list of case indices")
    thetas, xs = [], []
    for i in indices:
        g = chunk_generator(seed, int(i))
        theta = sample_prior(simulator.prior, 1, generator=g)
        thetas.append(theta)
        xs.append(simulator.simulate(theta, generator=g))
    return torch.cat(thetas), torch.cat(xs)


class TableRows(Distribution):
    """The rows of a simulation table as a prior: ``sample`` draws rows uniformly with replacement.

    The rows are i.i.d. draws from the model prior, so ``log_prob`` is the model prior's density (methods that
    need a prior density get the continuous one, not the empirical point masses).
    """

    arg_constraints: dict = {}
    has_rsample = False

    def __init__(self, rows: torch.Tensor, model_prior: Distribution) -> None:
        self.rows = rows
        self.model_prior = model_prior
        super().__init__(batch_shape=torch.Size(), event_shape=rows.shape[-1:], validate_args=False)

    @property
    def support(self) -> constraints.Constraint:
        return self.model_prior.support

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size(), generator=None) -> torch.Tensor:
        """Draw table rows, shape (*sample_shape, D)."""
        shape = torch.Size(sample_shape)
        device = generator.device if generator is not None else self.rows.device
        idx = torch.randint(len(self.rows), shape, generator=generator, device=device)
        return self.rows[idx.to(self.rows.device)].to(device)

    def log_prob(self, theta: torch.Tensor) -> torch.Tensor:
        """The model prior's log density, shape (*)."""
        return self.model_prior.log_prob(theta)
