"""The misspecification score: calibrated p-values on well-specified data, a flag on shifted observations."""

import math

import torch

import inference
import simulators
from inference.posterior.misspecification import SummaryMahalanobis


def test_p_values_are_uniform_for_exchangeable_data(generator):
    """For new draws from the reference distribution the empirical p-value is (super-)uniform by exchangeability.

    Tolerance: the false-alarm fraction at level 0.05 over 2000 draws within 4 binomial standard errors.
    """
    a = torch.randn(5000, 3, generator=generator) @ torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 0.2]])
    score = SummaryMahalanobis.fit(a[:3000])
    p = score(a[3000:]).p_value
    frac = float((p < 0.05).float().mean())
    assert abs(frac - 0.05) < 4 * math.sqrt(0.05 * 0.95 / 2000), frac


def test_mahalanobis_distance_is_exact_for_a_known_covariance(generator):
    # with many reference points the fitted mean/covariance approach the truth: d^2 of a point = x^T S^-1 x
    cov = torch.tensor([[2.0, 0.6], [0.6, 0.5]], dtype=torch.float64)
    ref = torch.randn(200_000, 2, generator=generator, dtype=torch.float64) @ torch.linalg.cholesky(cov).T
    score = SummaryMahalanobis.fit(ref)
    x = torch.tensor([[1.0, -2.0]], dtype=torch.float64)
    exact = (x @ torch.linalg.inv(cov) @ x.T).sqrt().item()
    # basis: relative error of an estimated covariance with N = 2e5 is ~ sqrt(2 / N) ~ 0.3%; allow 2%
    assert abs(float(score.distance(x)[0]) - exact) < 0.02 * exact


def test_shifted_observation_is_flagged_by_the_trained_cinn():
    """A set of arm end points shifted far from anything the arm can reach gets a tiny p-value; simulated sets don't.

    The shift: every element moved by +4 along y1 (the arm reaches |y1| <~ 2.5 under its prior).
    """
    sim = simulators.get("arm", noise_std=0.1, n_obs="1-8")
    est = inference.fit(
        sim,
        method="cinn",
        budget=3000,
        options={"blocks": 2, "hidden": 32, "summary_dim": 8, "summary_hidden": 32, "steps": 150, "val_every": 50},
        generator=torch.Generator().manual_seed(0),
        progress=False,
    )
    g = torch.Generator().manual_seed(5)
    theta = simulators.sample_prior(sim.prior, 400, generator=g)
    x = sim.simulate(theta, n_obs=5, generator=g)
    ok = est.misspecification(x)
    shifted = est.misspecification(x[:20] + torch.tensor([4.0, 0.0]))
    # the reference set holds 256 held-out sims: the smallest possible p-value is 1 / 257
    assert (shifted.p_value < 0.01).all(), shifted
    assert (shifted.distance > ok.distance.quantile(0.99)).all()
    # well specified: false alarms at level 0.05 within 4 binomial standard errors of 5% (N = 400)
    assert float((ok.p_value < 0.05).float().mean()) < 0.05 + 4 * math.sqrt(0.05 * 0.95 / 400)
