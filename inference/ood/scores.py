"""The registered OOD scores of inputs under a prior: ``lmd``, ``diffuse-denoise``, ``likelihood``, ``elbo``,
``iwae``. Each has an options dataclass (``--option key=value``), says what its number is, and which way is
out-of-distribution; :func:`score` runs any of them batched, with a progress bar.

| score             | priors                      | value                         | what it is                         |
|-------------------|-----------------------------|-------------------------------|------------------------------------|
| `lmd`             | diffusion, flow matching    | median inpainting distance    | a distance (large = unlike data)   |
| `diffuse-denoise` | diffusion, flow matching    | distance after noising to t   | a distance, ~1/30 of LMD's cost    |
| `likelihood`      | flow                        | log p(x)                      | exact                              |
| `likelihood`      | diffusion, flow matching    | log p(x) of the ODE           | exact trace (<= 64 values) up to   |
|                   |                             |                               | the solver, else an unbiased       |
|                   |                             |                               | Hutchinson estimate                |
| `elbo`            | DDPM / DDIM                 | mean log w over chains        | a lower bound on log p             |
| `iwae`            | DDPM / DDIM                 | log mean w over K chains      | a bound converging to log p        |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from tqdm.auto import tqdm

from inference.ood import likelihood as lik
from inference.ood.reconstruct import DISTANCES, DiffusionInpainter, diffuse_denoise_score, lmd
from inference.options import build_options
from simulators import Registry
from zoo.flow_prior import FlowPrior
from zoo.priors import DiffusionPrior, Prior


class UnknownScoreError(ValueError):
    """An OOD score name that is not registered; the message lists the valid ones."""


def _positive(name: str, value: Any) -> None:
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value!r}")


def _distance(value: str) -> None:
    if value not in DISTANCES:
        raise ValueError(f"distance must be one of {', '.join(DISTANCES)}, got {value!r}")


@dataclass(frozen=True)
class LMDOptions:
    """LMD: ``attempts`` inpaintings (r) with ``num_steps`` sampler steps, ``block`` (0: the default, a sixteenth of
    the image side), ``distance`` mse or ssim."""

    attempts: int = 10
    num_steps: int = 50
    block: int = 0
    distance: str = "mse"

    def __post_init__(self) -> None:
        _positive("attempts", self.attempts)
        _positive("num_steps", self.num_steps)
        if self.block < 0:
            raise ValueError(f"block must be >= 0 (0: the default size), got {self.block!r}")
        _distance(self.distance)


@dataclass(frozen=True)
class DiffuseDenoiseOptions:
    """Diffuse to ``t`` (fraction of T), denoise with the steps of a ``num_steps`` sampler below it; median over
    ``attempts``."""

    t: float = 0.3
    attempts: int = 1
    num_steps: int = 50
    distance: str = "mse"

    def __post_init__(self) -> None:
        if not 0.0 < self.t <= 1.0:
            raise ValueError(f"t must be a fraction of T in (0, 1], got {self.t!r}")
        _positive("attempts", self.attempts)
        _positive("num_steps", self.num_steps)
        _distance(self.distance)


@dataclass(frozen=True)
class LikelihoodOptions:
    """Probability-flow ODE (diffusion priors): dopri5 tolerances ``rtol`` / ``atol``, Hutchinson ``probes``."""

    rtol: float = 1e-3
    atol: float = 1e-3
    probes: int = 1

    def __post_init__(self) -> None:
        for name in ("rtol", "atol"):
            v = getattr(self, name)
            if not 0.0 < v < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {v!r}")
        _positive("probes", self.probes)


@dataclass(frozen=True)
class ChainOptions:
    """ELBO / IWAE: ``chains`` forward chains on the grid of a ``num_steps`` sampler."""

    chains: int = 1
    num_steps: int = 50

    def __post_init__(self) -> None:
        _positive("chains", self.chains)
        _positive("num_steps", self.num_steps)


@dataclass(frozen=True)
class IWAEOptions(ChainOptions):
    chains: int = 16


class Scored(NamedTuple):
    """Scores of a batch: ``score`` (B,) and, for reconstruction scores, the reconstructions (B, *shape)."""

    score: torch.Tensor
    reconstruction: torch.Tensor | None = None


@dataclass(frozen=True)
class ScoreSpec:
    """A registered score.

    Attributes:
        name: the registry name.
        options: its options dataclass.
        higher_is_ood: whether large values mean "unlike the data" (distances) or typical (log-likelihoods).
        kind: what the value is, for a prior (``kind(prior)``): "distance", "exact", "ODE estimate", "bound", ...
        run: ``run(prior, x, options, generator) -> Scored``.
        description: one line for ``zoo list``.
    """

    name: str
    options: type
    higher_is_ood: bool
    kind: Callable[[Prior], str]
    run: Callable[[Prior, torch.Tensor, Any, torch.Generator | None], Scored]
    description: str = ""

    def make_options(self, options: Any = None) -> Any:
        return build_options(self.options, options, owner=f"OOD score {self.name!r}")


SCORES: Registry[ScoreSpec] = Registry("OOD score", UnknownScoreError)


def _diffusion(prior: Prior, name: str) -> DiffusionPrior:
    if not isinstance(prior, DiffusionPrior):
        raise ValueError(f"the {name!r} score needs a diffusion or flow-matching prior, got a {type(prior).__name__}")
    return prior


def _lmd(prior, x, o: LMDOptions, g) -> Scored:
    inpaint = DiffusionInpainter(_diffusion(prior, "lmd"), num_steps=o.num_steps)
    r = lmd(x, inpaint, attempts=o.attempts, block=o.block or None, distance_kind=o.distance, generator=g)
    return Scored(r.score, r.reconstruction)


def _dd(prior, x, o: DiffuseDenoiseOptions, g) -> Scored:
    p = _diffusion(prior, "diffuse-denoise")
    r = diffuse_denoise_score(
        p, x, t=o.t, attempts=o.attempts, num_steps=o.num_steps, distance_kind=o.distance, generator=g
    )
    return Scored(r.score, r.reconstruction)


def _likelihood(prior, x, o: LikelihoodOptions, g) -> Scored:
    if isinstance(prior, FlowPrior):
        return Scored(lik.flow_log_prob(prior, x))
    p = _diffusion(prior, "likelihood")
    return Scored(lik.ode_log_prob(p, x, rtol=o.rtol, atol=o.atol, probes=o.probes, generator=g))


def _likelihood_kind(prior: Prior) -> str:
    if isinstance(prior, FlowPrior):
        return "exact log-density"
    if prior.shape and torch.Size(prior.shape).numel() <= lik.EXACT_TRACE_MAX:
        return "probability-flow ODE log-density (exact trace; exact up to the solver tolerance)"
    return "probability-flow ODE log-density (Hutchinson trace: an unbiased estimate)"


def _elbo(prior, x, o: ChainOptions, g) -> Scored:
    p = _diffusion(prior, "elbo")
    return Scored(lik.elbo(p, x, chains=o.chains, num_steps=o.num_steps, generator=g))


def _iwae(prior, x, o: ChainOptions, g) -> Scored:
    p = _diffusion(prior, "iwae")
    return Scored(lik.iwae(p, x, chains=o.chains, num_steps=o.num_steps, generator=g))


def register_score(spec: ScoreSpec) -> None:
    """Add a score to :data:`SCORES` (a contract test runs every registered score)."""
    SCORES.register(spec.name, spec)


register_score(
    ScoreSpec(
        "lmd",
        LMDOptions,
        True,
        lambda p: "distance (median inpainting error)",
        _lmd,
        "median distance between the input and its checkerboard inpaintings by the prior (LMD)",
    )
)
register_score(
    ScoreSpec(
        "diffuse-denoise",
        DiffuseDenoiseOptions,
        True,
        lambda p: "distance (reconstruction error from level t)",
        _dd,
        "distance between the input and its reconstruction after noising to level t (cheap)",
    )
)
register_score(
    ScoreSpec(
        "likelihood",
        LikelihoodOptions,
        False,
        _likelihood_kind,
        _likelihood,
        "log p(x): exact for flow priors, the probability-flow ODE for diffusion priors",
    )
)
register_score(
    ScoreSpec(
        "elbo",
        ChainOptions,
        False,
        lambda p: "evidence lower bound (<= log p)",
        _elbo,
        "evidence lower bound on log p(x) (DDPM / DDIM priors)",
    )
)
register_score(
    ScoreSpec(
        "iwae",
        IWAEOptions,
        False,
        lambda p: "importance-weighted bound (-> log p as chains grow)",
        _iwae,
        "importance-weighted bound, a consistent estimate of log p(x) (DDPM / DDIM priors)",
    )
)


def scores() -> list[str]:
    """The registered score names."""
    return SCORES.names()


def score_spec(name: str) -> ScoreSpec:
    """The :class:`ScoreSpec` of ``name`` (:class:`UnknownScoreError` lists the valid names)."""
    return SCORES.get(name)


def score(
    prior: Prior,
    x: torch.Tensor,
    method: str = "lmd",
    *,
    options: Any = None,
    generator: torch.Generator | None = None,
    batch_size: int = 128,
    progress: bool = False,
    desc: str | None = None,
) -> Scored:
    """Score inputs x (N, *prior.shape), data space, with a registered score, in batches.

    Returns:
        :class:`Scored` with ``score`` (N,) on the CPU and the reconstructions (N, *shape) of reconstruction scores.

    Raises:
        UnknownScoreError: an unknown ``method``.
        ValueError: inputs of the wrong shape or with NaN / inf, bad options, a score the prior cannot give.
    """
    spec = score_spec(method)
    opts = spec.make_options(options)
    check_inputs(prior, x)
    parts, recs = [], []
    bar = tqdm(total=len(x), desc=desc or f"ood {method}", unit="input", disable=not progress, leave=False)
    for i in range(0, len(x), int(batch_size)):
        out = spec.run(prior, x[i : i + int(batch_size)], opts, generator)
        parts.append(out.score.detach().float().cpu())
        if out.reconstruction is not None:
            recs.append(out.reconstruction.detach().float().cpu())
        bar.update(min(int(batch_size), len(x) - i))
    bar.close()
    return Scored(torch.cat(parts), torch.cat(recs) if recs else None)


def check_inputs(prior: Prior, x: torch.Tensor, what: str = "inputs") -> None:
    """One-line errors for inputs the prior cannot score: the wrong shape, NaN or infinite values."""
    shape = tuple(prior.shape)
    if not isinstance(x, torch.Tensor) or x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{what} must have shape (N, {', '.join(map(str, shape))}) for this prior, got {got}")
    if len(x) < 1:
        raise ValueError(f"{what} are empty; give at least one")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{what} contain NaN or infinite values")


__all__ = [
    "SCORES",
    "ChainOptions",
    "DiffuseDenoiseOptions",
    "IWAEOptions",
    "LMDOptions",
    "LikelihoodOptions",
    "ScoreSpec",
    "Scored",
    "UnknownScoreError",
    "check_inputs",
    "register_score",
    "score",
    "score_spec",
    "scores",
]
