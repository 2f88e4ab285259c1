"""One posterior run: an estimator and observations in, a :class:`~inference.results.PosteriorSamples` out.

This is what ``zoo infer`` calls after :func:`inference.estimator_for`. It takes the observations as given, or
simulates them from parameters or a test case, draws the posterior for all of them in one batched call, adds prior
draws (for comparison plots), re-simulations of posterior draws (the re-simulation check) and the misspecification
score where the estimator has one, and records provenance.
"""

from __future__ import annotations

import time

import numpy as np
import torch

import simulators
from inference.methods import Estimator
from inference.options import options_dict
from inference.resolve import EstimatorChoice
from inference.results import PosteriorSamples
from simulators import check_theta


def infer(
    estimator: Estimator | EstimatorChoice,
    x_o: torch.Tensor | None = None,
    *,
    theta: torch.Tensor | None = None,
    test_index: int | None = None,
    test_seed: int = 0,
    n_samples: int = 1000,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    theta_true: torch.Tensor | None = None,
    n_prior: int = 2000,
    n_predictive: int = 1000,
    fit_seconds: float = 0.0,
) -> PosteriorSamples:
    """Draw the posterior of ``estimator`` for observations ``x_o`` and package it as a result.

    The observations come from exactly one of ``x_o``, ``theta`` (simulated with ``generator``; the truth is
    recorded) or ``test_index`` (case K of the simulated test set with base ``test_seed``, the same case as
    ``zoo diagnose``'s case K: :func:`simulators.simulate_cases`).

    Arguments:
        estimator: a fitted or loaded estimator, or the choice of :func:`inference.estimator_for` (a pending fit runs
            after the observations are simulated, and its time is recorded).
        x_o: one observation ``obs_shape`` or several ``(B, *obs_shape)``; for a set-valued simulator, sets
            ``(K, *element_shape)`` or ``(B, K, *element_shape)`` of any size K in its ``n_obs`` range.
        theta: parameters to simulate observations from, shape (D,) or (B, D).
        test_index: the index of a simulated test case.
        test_seed: base seed of the simulated test set.
        n_samples: posterior draws per observation (all chains together).
        generator: source of randomness.
        seed: the generator's seed, recorded in the result.
        theta_true: the true parameters where known, shape ``(D,)`` or ``(B, D)``.
        n_prior: prior draws stored for comparison (0 for none).
        n_predictive: posterior draws per observation to re-simulate (0 for none).
        fit_seconds: time spent fitting, added to the recorded wall time.

    Returns:
        a :class:`PosteriorSamples` with draws shaped (chain, draw, observation, D); with the misspecification
        score per observation in ``sample_stats`` (``misspecification_distance``, ``misspecification_pvalue``) when
        the estimator has one.

    Raises:
        ValueError: for an observation of the wrong shape or with non-finite values, a method returning draws of
            the wrong shape or non-finite draws.
    """
    choice = estimator if isinstance(estimator, EstimatorChoice) else None
    sim = estimator.simulator
    sources = [name for name, v in (("x_o", x_o), ("theta", theta), ("test_index", test_index)) if v is not None]
    if len(sources) != 1:
        raise ValueError(f"give exactly one of x_o, theta, test_index; got {', '.join(sources) or 'none'}")
    if theta is not None:
        theta_true = check_theta(torch.as_tensor(theta), len(sim.param_names), "theta")
        simulators.check_support(sim.prior, theta_true, "theta")  # no silent extrapolation beyond the prior
        x_o = sim.simulate(theta_true, generator=generator)
    elif test_index is not None:
        theta_true, x_o = simulators.simulate_cases(sim, [test_index], seed=test_seed)
    x_o, obs_shape = simulators.validate_observation(sim, torch.as_tensor(x_o))
    x = x_o.reshape(-1, *obs_shape)
    if choice is not None:
        estimator = choice.estimator
        fit_seconds += choice.fit_seconds
    n_obs, dim = x.shape[0], len(sim.param_names)
    if not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
    if n_prior < 0 or n_predictive < 0:
        raise ValueError(f"n_prior and n_predictive must be >= 0, got {n_prior} and {n_predictive}")
    notes = []
    if not getattr(sim, "available", True) and (n_prior or n_predictive):  # a saved estimator's detached simulator
        notes.append(f"no prior draws and no re-simulation: {sim.reason}")
        n_prior = n_predictive = 0
    truth = None
    if theta_true is not None:
        truth = check_theta(torch.as_tensor(theta_true, dtype=x.dtype), dim, "theta_true").reshape(-1, dim)
        if truth.shape[0] != n_obs:
            raise ValueError(f"theta_true has {truth.shape[0]} rows for {n_obs} observations")

    t0 = time.perf_counter()
    post = estimator.posterior(x)
    if hasattr(post, "sample_with_stats"):
        samples, stats = post.sample_with_stats(n_samples, generator=generator)
    else:
        samples, stats = post.sample(n_samples, generator=generator), {}
    wall = time.perf_counter() - t0 + fit_seconds
    if tuple(samples.shape) != (n_samples, n_obs, dim):
        raise ValueError(
            f"method {estimator.method!r} returned draws of shape {tuple(samples.shape)}, "
            f"expected {(n_samples, n_obs, dim)}"
        )
    if not torch.isfinite(samples).all():
        raise ValueError(f"method {estimator.method!r} returned non-finite posterior draws")
    chains = int(getattr(post, "n_chains", 1))
    if n_samples % chains:
        raise ValueError(f"n_samples={n_samples} is not a multiple of the {chains} chains")
    draws = samples.reshape(chains, n_samples // chains, n_obs, dim)

    stat_arrays = {}
    for k, v in stats.items():
        v = torch.as_tensor(v)
        if tuple(v.shape) == (n_samples, n_obs):
            v = v.reshape(chains, n_samples // chains, n_obs)
        elif tuple(v.shape) not in ((n_obs,), (n_obs, dim)):
            raise ValueError(f"sample statistic {k!r} has shape {tuple(v.shape)}; expected per draw or observation")
        stat_arrays[k] = v.detach().cpu().numpy()

    prior = None
    if n_prior:
        prior = simulators.sample_prior(sim.prior, n_prior, generator=generator)
    predictive = None
    if n_predictive:
        predictive, err = resimulate(sim, draws, x, n_predictive, generator=generator, notes=notes)
        stat_arrays.setdefault("resimulation_error", np.full(draws.shape[:3], np.nan))
        stat_arrays["resimulation_error"][:, : err.shape[1]] = err
    if hasattr(estimator, "misspecification"):
        score = estimator.misspecification(x)
        stat_arrays["misspecification_distance"] = score.distance.reshape(n_obs).detach().cpu().numpy()
        stat_arrays["misspecification_pvalue"] = score.p_value.reshape(n_obs).detach().cpu().numpy()

    return PosteriorSamples(
        draws=draws,
        param_names=tuple(sim.param_names),
        observation=x,
        method=estimator.method,
        simulator=sim.name,
        simulator_options=dict(getattr(sim, "options", {}) or {}),
        method_options=options_dict(estimator.options),
        budget=estimator.budget,
        seed=seed,
        wall_time_s=wall,
        observation_names=getattr(sim, "observation_names", None) if len(obs_shape) == 1 else None,
        theta_true=truth,
        prior_draws=prior,
        predictive=predictive,
        sample_stats=stat_arrays,
        notes=notes,
    )


def resimulate(
    sim: object,
    draws: torch.Tensor,
    x: torch.Tensor,
    n: int,
    *,
    generator: torch.Generator | None = None,
    notes: list[str] | None = None,
) -> tuple[torch.Tensor, np.ndarray]:
    """Simulate the first ``n`` draws of each chain and their distance to the observations.

    Draws outside the prior's support are not simulated (the simulator is not defined there): their simulations are
    NaN and a note says how many; a slow simulator's ``resimulation_limit`` caps the draws simulated per call.

    Arguments:
        sim: the simulator.
        draws: posterior draws (chain, draw, observation, D).
        x: the observations (observation, *obs_shape).
        n: draws per chain and observation to simulate.

    Returns:
        the simulations (chain, n', observation, *obs_shape) and the re-simulation errors (chain, n', observation),
        n' <= n; for sets the error compares the element means.
    """
    chains, _, n_obs, dim = draws.shape
    notes = [] if notes is None else notes
    k = min(n, draws.shape[1])
    limit = getattr(sim, "resimulation_limit", None)  # a slow simulator caps the draws re-simulated per call
    if limit and k * n_obs > limit:
        notes.append(f"re-simulated {max(1, limit // n_obs)} of {k} draws per observation ({sim.name} limit {limit})")
        k = max(1, limit // n_obs)
    theta = draws[:, :k].reshape(-1, dim)
    inside = torch.ones(len(theta), dtype=torch.bool)
    try:
        lo, hi = simulators.support_bounds(sim.prior)
        inside = ((theta >= lo.to(theta)) & (theta <= hi.to(theta))).all(-1)
    except ValueError:  # a support that is not a box: every draw is simulated
        pass
    if not inside.all():
        share = 100 * float((~inside).float().mean())
        notes.append(f"{share:.1f}% of the re-simulated draws lie outside the prior's support: not simulated (NaN)")
    set_size = {"n_obs": x.shape[1]} if simulators.is_set_valued(sim) else {}
    out = sim.simulate(theta[inside], generator=generator, **set_size)
    sims = torch.full((len(theta), *out.shape[1:]), float("nan"), dtype=out.dtype)
    sims[inside] = out
    sims = sims.reshape(chains, k, n_obs, *out.shape[1:])
    if set_size:  # i.i.d. set elements: compare the element means of the re-simulated and the observed sets
        err = (sims.mean(-2) - x.mean(-2)).reshape(chains, k, n_obs, -1).norm(dim=-1)
    else:
        err = (sims - x).reshape(chains, k, n_obs, -1).norm(dim=-1)
    return sims, err.detach().cpu().numpy()
