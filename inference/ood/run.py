"""Score inputs against a prior and calibrate the scores: the reference set, p-values and the result object.

The reference is a set of in-distribution inputs scored the same way as the inputs; their scores make the
typicality test (:class:`~inference.ood.pvalues.Typicality`). By default it is fresh draws of the data the prior
was trained on, when the prior records a zoo training recipe (the shipped color-MNIST priors), and otherwise
samples of the prior itself (a user's diffusers directory) — the latter tests "is this input like what the prior
generates", which is only as good as the prior.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch

from inference.ood.pvalues import Typicality
from inference.ood.scores import check_inputs, score, score_spec
from inference.options import options_dict
from inference.results.ood import OODScores
from simulators.files import load_npy
from zoo.priors import Prior

DEFAULT_REFERENCE_SIZE = 200


def recorded_data(prior: Prior) -> tuple[str, str] | None:
    """The (data source, variant) a zoo-trained prior records in its metadata, or ``None``."""
    training = prior.meta.get("training") or {}
    recipe = training.get("recipe") if isinstance(training, dict) else None
    if not isinstance(recipe, str):
        return None
    from zoo.recipes import RECIPES

    if recipe not in RECIPES:
        return None
    r = RECIPES.get(recipe)
    variant = (training.get("settings") or {}).get("variant", r.variant)
    return r.data, str(variant)


def reference_inputs(
    prior: Prior,
    spec: str | os.PathLike | torch.Tensor | None = None,
    n: int = DEFAULT_REFERENCE_SIZE,
    *,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, str]:
    """In-distribution reference inputs (n, *prior.shape) and a description of where they came from.

    Arguments:
        prior: the prior.
        spec: ``None`` (the prior's recorded training data, else its samples), ``"prior"`` (samples of the prior),
            a data-source name (``"color-mnist"``, optionally ``"color-mnist:ood"`` for a variant), a ``.npy`` file
            of inputs (M, *shape) (all M rows are used), or a tensor.
        n: the number of drawn reference inputs.
        generator: randomness of the draws.
    """
    from zoo.recipes.data import DATA, data_source

    if isinstance(spec, torch.Tensor):
        ref, what = spec.float(), "given tensor"
    elif spec is None and recorded_data(prior) is not None:
        data, variant = recorded_data(prior)
        ref, what = data_source(data, variant).sample(n, generator=generator), f"{data} ({variant}), the training data"
    elif spec is None or spec == "prior":
        ref, what = prior.sample(n, generator=generator).cpu(), "samples of the prior"
    elif str(spec).split(":")[0] in DATA:
        data, _, variant = str(spec).partition(":")
        ref, what = data_source(data, variant or "tied").sample(n, generator=generator), f"{data} ({variant or 'tied'})"
    else:
        path = Path(spec)
        if not path.is_file():
            raise FileNotFoundError(
                f"--reference {str(spec)[:80]!r} is neither 'prior', a data source ({', '.join(DATA.names())}) "
                "nor an existing .npy file"
            )
        ref = torch.as_tensor(load_npy(path, "reference inputs (M, *shape)"), dtype=torch.float32)
        what = str(path)
    check_inputs(prior, ref, "the reference inputs")
    if len(ref) < 2:
        raise ValueError("the reference needs at least 2 inputs to calibrate p-values")
    return ref, what


def ood_scores(
    prior: Prior,
    x: torch.Tensor,
    *,
    method: str = "lmd",
    options: Any = None,
    reference: str | os.PathLike | torch.Tensor | None = None,
    reference_size: int = DEFAULT_REFERENCE_SIZE,
    alternative: str = "two-sided",
    seed: int | None = 0,
    batch_size: int = 128,
    prior_name: str = "",
    progress: bool = False,
) -> OODScores:
    """Score inputs x (N, *prior.shape) with ``method`` and calibrate against reference scores.

    Returns:
        an :class:`~inference.results.OODScores` with scores, two-sided typicality p-values, the reference scores
        and, for reconstruction scores, the reconstructions.

    Raises:
        ValueError: inputs of the wrong shape or with NaN / inf, an unknown score or bad options (one line).
    """
    spec = score_spec(method)
    opts = spec.make_options(options)
    check_inputs(prior, x)
    Typicality([0.0], alternative)  # checks the alternative before any work
    g = torch.Generator().manual_seed(int(seed)) if seed is not None else None
    start = time.perf_counter()
    ref, what = reference_inputs(prior, reference, reference_size, generator=g)
    kw = {"options": opts, "generator": g, "batch_size": batch_size, "progress": progress}
    ref_scores = score(prior, ref, method, desc=f"reference ({method})", **kw).score
    out = score(prior, x.float(), method, desc=f"inputs ({method})", **kw)
    sign = 1.0 if spec.higher_is_ood else -1.0
    if not bool(torch.isfinite(ref_scores).all()):
        raise ValueError(f"the {method} score of some reference inputs is not finite; check the prior")
    test = Typicality(ref_scores.numpy(), alternative if sign > 0 else _mirror(alternative))
    return OODScores(
        inputs=x.float().cpu(),
        score=out.score,
        p_value=test.p_values(out.score.numpy()),
        reference_score=ref_scores,
        method=method,
        kind=spec.kind(prior),
        higher_is_ood=spec.higher_is_ood,
        prior=prior_name or str(prior.meta.get("name", type(prior).__name__)),
        reference=what,
        method_options=options_dict(opts),
        alternative=alternative,
        reconstruction=out.reconstruction,
        seed=seed,
        wall_time_s=time.perf_counter() - start,
    )


def _mirror(alternative: str) -> str:
    # for log-likelihoods "greater" (more OOD) means a *lower* value
    return {"greater": "less", "less": "greater"}.get(alternative, alternative)


CHECK_METHOD = "diffuse-denoise"
"""The score ``--ood-check`` runs on a diffusion prior: the cheapest calibrated one."""


def quick_check(
    prior: Prior, x: torch.Tensor, *, reference_size: int = 200, seed: int = 0, prior_name: str = ""
) -> OODScores:
    """The cheapest calibrated check of inputs under a prior (``zoo fiber --ood-check``): diffuse-denoise for
    diffusion priors, the exact likelihood for flow priors, against ``reference_size`` reference inputs."""
    from zoo.flow_prior import FlowPrior

    method = "likelihood" if isinstance(prior, FlowPrior) else CHECK_METHOD
    return ood_scores(prior, x, method=method, reference_size=reference_size, seed=seed, prior_name=prior_name)


__all__ = ["CHECK_METHOD", "DEFAULT_REFERENCE_SIZE", "ood_scores", "quick_check", "recorded_data", "reference_inputs"]
