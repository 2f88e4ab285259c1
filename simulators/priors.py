"""Priors a user brings: any torch / pyro distribution with event shape (D,), or a list of independent 1-D priors.

:func:`as_prior` turns what a user passes into a distribution with ``event_shape == (D,)``; :func:`joint` builds one
from independent 1-D priors (each may be constrained: Gamma, Beta, LogNormal, Uniform, ...). :func:`support_bounds`
reads a prior's support as a box per coordinate (``-inf`` / ``inf`` for open sides), which is what the trained
methods map to the real line and back (:mod:`inference.posterior.support`); :func:`check_support` refuses parameters
outside it in one line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch.distributions import Distribution, Independent, constraints


class Box(constraints.Constraint):
    """The support ``lo <= theta_d <= hi`` per coordinate (``-inf`` / ``inf`` for open sides); event dimension 1."""

    event_dim = 1

    def __init__(self, lo: torch.Tensor, hi: torch.Tensor) -> None:
        self.lo, self.hi = lo, hi
        super().__init__()

    def check(self, value: torch.Tensor) -> torch.Tensor:
        return ((value >= self.lo) & (value <= self.hi)).all(-1)


class JointIndependent(Distribution):
    """Independent 1-D priors as one distribution over theta of shape (D,): ``log p = sum_d log p_d(theta_d)``.

    Arguments:
        priors: D univariate distributions (batch and event shape ``()``).
    """

    arg_constraints: dict = {}
    has_rsample = False

    def __init__(self, priors: Sequence[Distribution]) -> None:
        self.priors = list(priors)
        for i, p in enumerate(self.priors):
            if not isinstance(p, Distribution) or tuple(p.batch_shape) or tuple(p.event_shape):
                raise ValueError(
                    f"prior {i} must be a univariate torch / pyro distribution (batch and event shape ()), got {p!r}"
                )
        super().__init__(batch_shape=torch.Size(), event_shape=torch.Size([len(self.priors)]), validate_args=False)

    @property
    def support(self) -> Box:
        lo, hi = zip(*(_interval(p.support) for p in self.priors))
        return Box(torch.tensor(lo), torch.tensor(hi))

    def sample(self, sample_shape: torch.Size = torch.Size(), generator: torch.Generator | None = None) -> torch.Tensor:
        from simulators.sampling import sample_prior

        return torch.stack([sample_prior(p, tuple(sample_shape), generator=generator) for p in self.priors], -1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return sum(p.log_prob(value[..., i]) for i, p in enumerate(self.priors))

    @property
    def mean(self) -> torch.Tensor:
        return torch.stack([torch.as_tensor(p.mean, dtype=torch.float32) for p in self.priors])


def joint(priors: Sequence[Distribution]) -> JointIndependent:
    """One prior over theta of shape (D,) from D independent univariate priors.

    Example:
        >>> import torch
        >>> from torch.distributions import Gamma, Normal
        >>> p = joint([Normal(0.0, 1.0), Gamma(2.0, 1.0)])
        >>> tuple(p.event_shape), support_bounds(p)[0].tolist()
        ((2,), [-inf, 0.0])
    """
    return JointIndependent(priors)


class DensityPrior(Distribution):
    """A fitted density over theta (e.g. a ``zoo.FlowPrior``) as a distribution: any object with ``shape == (D,)``,
    ``log_prob(theta)`` for theta (B, D) and ``sample(n, generator=...)``. Its support is the real line per
    coordinate; nothing here imports the model's library."""

    arg_constraints: dict = {}
    has_rsample = False
    support = constraints.independent(constraints.real, 1)

    def __init__(self, density: object) -> None:
        self.density = density
        super().__init__(batch_shape=torch.Size(), event_shape=torch.Size(density.shape), validate_args=False)

    def sample(self, sample_shape: torch.Size = torch.Size(), generator: torch.Generator | None = None) -> torch.Tensor:
        shape = torch.Size(sample_shape)
        with torch.no_grad():
            draws = self.density.sample(shape.numel(), generator=generator)
        return draws.detach().to("cpu", torch.float32).reshape(*shape, *self.event_shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        flat = value.reshape(-1, *self.event_shape)
        return self.density.log_prob(flat).reshape(value.shape[:-1])


def _is_density(obj: object) -> bool:
    shape = getattr(obj, "shape", None)
    return (
        not isinstance(obj, Distribution | torch.Tensor)
        and isinstance(shape, tuple)
        and len(shape) == 1
        and callable(getattr(obj, "log_prob", None))
        and callable(getattr(obj, "sample", None))
    )


def as_prior(prior: Distribution | Sequence[Distribution]) -> Distribution:
    """A prior with event shape (D,) from a distribution, a list of independent univariate ones, or a fitted
    density with ``shape == (D,)``, ``log_prob`` and ``sample(n, generator=)`` (a ``zoo.FlowPrior``).

    A univariate distribution with batch shape (D,) (e.g. ``Gamma(torch.ones(3), 1.0)``) becomes
    ``Independent(prior, 1)``.

    Raises:
        ValueError: one line, for anything else.
    """
    if isinstance(prior, list | tuple):
        return joint(prior)
    if _is_density(prior):
        return DensityPrior(prior)
    if not isinstance(prior, Distribution):
        raise ValueError(
            "prior must be a torch / pyro distribution, a list of univariate ones or a zoo.FlowPrior over vectors, "
            f"got {type(prior).__name__}"
        )
    if len(prior.event_shape) == 0 and len(prior.batch_shape) == 1:
        prior = Independent(prior, 1)
    if len(prior.event_shape) != 1 or len(prior.batch_shape) != 0:
        raise ValueError(
            f"prior must have event shape (D,) and no batch shape, got batch {tuple(prior.batch_shape)} and event "
            f"{tuple(prior.event_shape)}; wrap a batch of univariate priors in torch.distributions.Independent(p, 1)"
        )
    return prior


def _interval(c: constraints.Constraint) -> tuple[float, float]:
    """(lo, hi) of a univariate constraint; ValueError for one zoo cannot map to a box."""
    if hasattr(c, "base_constraint"):  # independent, mixture: the components' support
        return _interval(c.base_constraint)
    if c is constraints.real or isinstance(c, type(constraints.real)):
        return (-math.inf, math.inf)
    if isinstance(c, constraints.greater_than | constraints.greater_than_eq):
        return (c.lower_bound, math.inf)
    if isinstance(c, constraints.less_than):
        return (-math.inf, c.upper_bound)
    if isinstance(c, constraints.interval | constraints.half_open_interval):
        return (c.lower_bound, c.upper_bound)
    raise ValueError(
        f"a prior support {c} is not a box; zoo handles the real line, half-lines and intervals per coordinate"
    )


def support_bounds(prior: Distribution) -> tuple[torch.Tensor, torch.Tensor]:
    """The prior's support as a box: ``lo``, ``hi`` of shape (D,), ``-inf`` / ``inf`` for open sides.

    Raises:
        ValueError: a support that is not a box per coordinate (a simplex, a correlation matrix, ...).
    """
    d = int(prior.event_shape[0])
    support = prior.support
    if isinstance(support, Box):
        lo, hi = support.lo, support.hi
    else:
        if support is constraints.real_vector:
            return torch.full((d,), -math.inf), torch.full((d,), math.inf)
        lo, hi = _interval(support)
    lo = torch.broadcast_to(torch.as_tensor(lo, dtype=torch.float32), (d,)).clone()
    hi = torch.broadcast_to(torch.as_tensor(hi, dtype=torch.float32), (d,)).clone()
    return lo, hi


def check_support(prior: Distribution, theta: torch.Tensor, name: str = "theta") -> None:
    """Raise a one-line ``ValueError`` for parameters outside the prior's support (where it is a box)."""
    try:
        lo, hi = support_bounds(prior)
    except ValueError:
        return  # a support zoo cannot read as a box is checked by the distribution itself, if at all
    lo, hi = lo.to(theta), hi.to(theta)
    bad = (theta < lo) | (theta > hi)
    if bad.any():
        idx = tuple(int(i) for i in bad.nonzero()[0])
        d = idx[-1]
        raise ValueError(
            f"{name}: value {theta[idx].item():.6g} at index {idx} is outside the prior's support "
            f"[{lo[d].item():g}, {hi[d].item():g}] of parameter {d}"
        )
