"""NUTS reference sampler: agreement with exact posteriors, diagnostics, RNG hygiene and refusal without likelihood.

Tolerance: a posterior mean within 4 Monte-Carlo standard errors sd / sqrt(ESS) of the exact mean.
"""

import pytest
import torch

import inference
import simulators


@pytest.fixture(scope="module")
def gm_run():
    gm = simulators.get("gaussian-mixture", labels="all")  # one mode per label: posterior N(mu_k, 0.2^2 I)
    est = inference.fit(gm, method="nuts", budget=None, options={"warmup": 100, "chains": 2}, progress=False)
    x_o = torch.nn.functional.one_hot(torch.tensor([2, 6]), 8).float()
    theta, stats = est.posterior(x_o).sample_with_stats(300, generator=torch.Generator().manual_seed(0))
    return gm, x_o, theta, stats


def test_nuts_matches_exact_gaussian_mixture_posterior(gm_run):
    gm, x_o, theta, stats = gm_run
    assert theta.shape == (300, 2, 2)
    mu = gm.means[x_o.argmax(-1)]  # (2, 2)
    se = gm.std / stats["ess"].sqrt()
    assert ((theta.mean(0) - mu).abs() < 4 * se).all()
    # the posterior sd is 0.2; its estimate from ~ESS draws has relative s.e. ~ 1 / sqrt(2 ESS)
    assert ((theta.std(0) / gm.std - 1).abs() < 4 / (2 * stats["ess"]).sqrt()).all()


def test_nuts_reports_rhat_ess_and_divergences(gm_run):
    _, _, _, stats = gm_run
    assert stats["r_hat"].shape == (2, 2) and stats["ess"].shape == (2, 2) and stats["divergences"].shape == (2,)
    assert (stats["r_hat"] < 1.1).all()  # two well-mixed chains on a unimodal posterior
    assert (stats["ess"] > 20).all()


def test_nuts_is_reproducible_and_leaves_global_rng_alone():
    gm = simulators.get("gaussian-mixture", labels="all")
    est = inference.fit(gm, method="nuts", budget=None, options={"warmup": 10, "chains": 1}, progress=False)
    x_o = torch.nn.functional.one_hot(torch.tensor(0), 8).float()
    state = torch.get_rng_state()
    a = est.posterior(x_o).sample(10, generator=torch.Generator().manual_seed(5))
    assert torch.equal(torch.get_rng_state(), state)
    b = est.posterior(x_o).sample(10, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b)


def test_nuts_needs_a_likelihood_and_whole_chains():
    with pytest.raises(ValueError, match="needs a simulator with a likelihood"):
        inference.fit(simulators.get("arm"), method="nuts", budget=None, progress=False)
    est = inference.fit(simulators.get("arm", noise_std=0.05), method="nuts", budget=None, progress=False)
    with pytest.raises(ValueError, match="multiple of the 2 NUTS chains"):
        est.posterior(torch.zeros(2)).sample(5)


@pytest.mark.slow
def test_nuts_matches_noisy_arm_reference_posterior():
    """The noisy arm: NUTS against the exact importance-resampling reference, by C2ST (slow: ~1-2 minutes)."""
    from inference.evaluation.diagnostics import c2st

    arm = simulators.get("arm", noise_std=0.05)
    g = torch.Generator().manual_seed(1)
    x_o = arm.simulate(torch.tensor([0.0, 0.3, -0.2, 0.4]), generator=g)
    est = inference.fit(arm, method="nuts", budget=None, options={"warmup": 300, "chains": 2}, progress=False)
    theta = est.posterior(x_o).sample(1000, generator=g)
    ref = arm.reference_posterior(x_o, 1000, generator=g)
    assert c2st(theta.numpy(), ref.numpy()) < 0.6


def test_nuts_progress_counts_every_warm_up_and_sampling_step(capsys):
    gm = simulators.get("gaussian-mixture", labels="all")
    est = inference.fit(gm, method="nuts", budget=None, options={"warmup": 7, "chains": 2}, progress=True)
    x_o = torch.nn.functional.one_hot(torch.tensor([1, 3]), 8).float()
    est.posterior(x_o).sample(10, generator=torch.Generator().manual_seed(0))
    err = capsys.readouterr().err
    total = 2 * 2 * (7 + 5)  # observations x chains x (warm-up + draws per chain)
    assert f"{total}/{total}" in err and "observation 2/2, chain 2/2" in err
