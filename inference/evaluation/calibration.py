"""Simulation-based calibration of any posterior method over simulated test cases.

``calibrate(estimator, n_test=200)`` takes the simulated test cases 0 .. N - 1 (theta*_i ~ p(theta),
x_i ~ p(x | theta*_i), case i from its own generator: :func:`simulators.simulate_cases`, the scheme ``zoo infer
--test-index`` uses too), asks the estimator for all N posteriors in one batched call, and scores them with
:mod:`inference.evaluation.diagnostics` and :mod:`inference.evaluation.coverage`: the thesis's marginal calibration
error and curve per parameter with the band an exact posterior stays in, SBC ranks with a uniformity test, TARP,
highest-density coverage (where the method has densities), re-simulation error, RMSE of the posterior mean and of
the MAP, and C2ST against exact reference draws where the simulator has them. ``zoo diagnose`` calls it.
"""

from __future__ import annotations

import time

import numpy as np
import torch

import simulators
from inference.evaluation import coverage, diagnostics
from inference.infer import infer
from inference.methods import Estimator
from inference.results import CalibrationReport


def calibrate(
    estimator: Estimator,
    *,
    n_test: int = 200,
    n_samples: int = 1000,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    test_seed: int = 0,
    test_set: tuple[torch.Tensor, torch.Tensor] | None = None,
    n_resim: int = 100,
    n_map: int = 0,
    c2st: int = 0,
    fit_seconds: float = 0.0,
) -> CalibrationReport:
    """Run simulation-based calibration of ``estimator`` over simulated test cases.

    Arguments:
        estimator: a fitted or loaded estimator.
        n_test: number of test cases N (ignored when ``test_set`` is given).
        n_samples: posterior draws per test case.
        generator: source of randomness of the posterior draws.
        seed: the generator's seed, recorded in the report.
        test_seed: base seed of the simulated test cases (case i is :func:`simulators.simulate_cases` case i).
        test_set: a fixed ``(theta*, x)`` pair of shapes (N, D) and (N, *obs_shape) instead of fresh simulations.
        n_resim: posterior draws per case re-simulated for the re-simulation error.
        n_map: test cases (the first ones) for which the mean-shift MAP is computed (0 skips it; it costs ~0.1-1 s
            per case).
        c2st: test cases (the first ones) scored by C2ST against the simulator's ``reference_posterior`` (exact or
            near-exact draws; 1000 draws each, or ``n_samples`` if fewer); 0 skips it. Needs the capability.
        fit_seconds: time spent fitting, recorded with the posterior draws.

    Returns:
        a :class:`~inference.results.CalibrationReport` holding the draws and every diagnostic.

    Example:
        >>> import torch, simulators, inference
        >>> from inference.evaluation.calibration import calibrate
        >>> g = torch.Generator().manual_seed(0)
        >>> est = inference.fit(simulators.get("gaussian-mixture"), method="abc", budget=20_000, generator=g,
        ...                     progress=False)
        >>> report = calibrate(est, n_test=50, n_samples=200, generator=g)
        >>> report.error < 0.1
        True
    """
    sim = estimator.simulator
    if test_set is None:
        if isinstance(n_test, bool) or not isinstance(n_test, int) or n_test < 2:
            raise ValueError(f"n_test must be an integer >= 2, got {n_test!r}")
        theta, x = simulators.simulate_cases(sim, n_test, seed=test_seed)
    else:
        theta, x = (torch.as_tensor(t) for t in test_set)
    t0 = time.perf_counter()
    result = infer(
        estimator,
        x,
        n_samples=n_samples,
        generator=generator,
        seed=seed,
        theta_true=theta,
        n_prior=n_samples,
        n_predictive=n_resim,
        fit_seconds=fit_seconds,
    )
    samples = result.flat()  # (n, N, D)
    truth = result.theta_true
    cal = diagnostics.calibration_error(samples, truth)
    ranks = diagnostics.sbc_ranks(samples, truth)
    pvals = diagnostics.sbc_uniformity(ranks, samples.shape[0])
    resim = result.sample_stats.get("resimulation_error")
    resim_mean = resim_median = float("nan")
    if resim is not None:
        r = resim[np.isfinite(resim)]
        resim_mean, resim_median = float(r.mean()), float(np.median(r))
    tarp = coverage.tarp(samples, truth, levels=cal.levels, seed=0 if seed is None else seed)
    rmse_mean, rmse_mean_per = diagnostics.rmse(samples.mean(0), truth)
    rmse_map, rmse_map_per = float("nan"), np.full(result.dim, np.nan)
    if n_map:
        k = min(n_map, samples.shape[1])
        maps = diagnostics.map_estimate(samples[:, :k])
        rmse_map, rmse_map_per = diagnostics.rmse(maps, truth[:k])
    c2sts = None
    if c2st:
        if not hasattr(sim, "reference_posterior"):
            raise ValueError(f"--c2st needs exact reference draws, and simulator {sim.name} has no reference_posterior")
        k, m = min(c2st, samples.shape[1]), min(1000, samples.shape[0])
        obs = torch.as_tensor(result.observation[:k])
        ref = sim.reference_posterior(obs, m, generator=generator)  # (m, k, D)
        c2sts = np.array([diagnostics.c2st(samples[:m, i], ref[:, i].numpy()) for i in range(k)])
    hpd = None
    post = estimator.posterior(torch.as_tensor(result.observation))
    if getattr(post, "has_log_prob", False):
        with torch.no_grad():
            lp_s = post.log_prob(torch.as_tensor(samples, dtype=torch.float32)).cpu().numpy()
            lp_t = post.log_prob(torch.as_tensor(truth, dtype=torch.float32)).cpu().numpy()
        hpd = diagnostics.expected_coverage(lp_s, lp_t)
    return CalibrationReport(
        result=result,
        levels=cal.levels,
        inlier=cal.inlier,
        error_per_parameter=cal.error_per_parameter,
        error=cal.error,
        sbc_ranks=ranks,
        sbc_pvalues=pvals,
        hpd_coverage=hpd,
        resimulation_error_mean=resim_mean,
        resimulation_error_median=resim_median,
        rmse_mean=rmse_mean,
        rmse_mean_per_parameter=rmse_mean_per,
        rmse_map=rmse_map,
        rmse_map_per_parameter=rmse_map_per,
        n_map=int(min(n_map, samples.shape[1])),
        seconds=time.perf_counter() - t0,
        band_per_parameter=coverage.calibration_band(samples.shape[1], levels=cal.levels),
        band=coverage.calibration_band(samples.shape[1], n_params=samples.shape[2], levels=cal.levels),
        tarp_ecp=tarp.ecp,
        tarp_error=tarp.error,
        c2st=c2sts,
    )
