"""Rejection ABC: exactness on discrete data, acceptance rules, batching, budgets and the refusal of far observations.

Tolerances: exact identities (re-simulated distances) to float32 round-off; C2ST of ABC against the exact posterior
in [0.4, 0.6] where ABC is exact (discrete observations, distance 0), as STYLE.md prescribes for exact samplers.
"""

import pytest
import torch

import inference
import simulators
from inference.evaluation.diagnostics import c2st
from inference.posterior.abc import ABCOptions, RejectionABC


def _onehot(k):
    return torch.nn.functional.one_hot(torch.as_tensor(k), 8).float()


def test_quantile_abc_is_exact_on_discrete_observations():
    gm = simulators.get("gaussian-mixture")
    g = torch.Generator().manual_seed(0)
    est = inference.fit(gm, method="abc", budget=20_000, generator=g, progress=False)
    x_o = _onehot([0, 2])  # label 0: four modes; label 2: one mode
    theta, stats = est.posterior(x_o).sample_with_stats(500, generator=g)
    assert theta.shape == (500, 2, 2)
    assert stats["distance"].shape == (500, 2) and (stats["distance"] == 0).all()
    ref = gm.reference_posterior(x_o, 500, generator=g)
    for i in range(2):
        assert 0.4 <= c2st(theta[:, i].numpy(), ref[:, i].numpy()) <= 0.6


def test_accepted_distances_are_the_true_distances_and_below_eps():
    arm = simulators.get("arm")
    g = torch.Generator().manual_seed(1)
    x_o = arm.simulate(torch.tensor([[0.0, 0.3, -0.2, 0.4], [0.1, -0.2, 0.3, 0.0]]))
    for opts in ({"mode": "quantile"}, {"mode": "threshold", "eps": 0.1}):
        est = inference.fit(arm, method="abc", budget=200_000, options=opts, generator=g, progress=False)
        theta, stats = est.posterior(x_o).sample_with_stats(100, generator=g)
        d = ((arm.simulate(theta) - x_o) / est.x_scale).norm(dim=-1)  # the deterministic arm: exact re-simulation
        torch.testing.assert_close(d, stats["distance"], atol=1e-5, rtol=1e-4)
        assert (stats["distance"] <= stats["eps"]).all()
        if opts["mode"] == "threshold":
            assert (stats["distance"] < 0.1).all()
            assert (stats["simulations"] <= 200_000).all()
        else:
            assert (stats["simulations"] == 200_000).all()


def test_budget_not_a_multiple_of_the_chunk_is_spent_exactly():
    gm = simulators.get("gaussian-mixture")
    g = torch.Generator().manual_seed(2)
    est = inference.fit(gm, method="abc", budget=10_001, options={"chunk": 3000}, generator=g, progress=False)
    _, stats = est.posterior(_onehot(1)).sample_with_stats(10, generator=g)
    assert int(stats["simulations"]) == 10_001


def test_batched_observations_share_one_simulation_pass():
    """The posterior of an observation is the same alone and in a batch (same generator, same simulations)."""
    arm = simulators.get("arm")
    est = inference.fit(arm, method="abc", budget=50_000, generator=torch.Generator().manual_seed(3), progress=False)
    x_o = arm.simulate(torch.tensor([[0.0, 0.3, -0.2, 0.4], [0.1, -0.2, 0.3, 0.0]]))
    alone = est.posterior(x_o[0]).sample(50, generator=torch.Generator().manual_seed(4))
    batch = est.posterior(x_o).sample(50, generator=torch.Generator().manual_seed(4))
    sort = lambda t: t[torch.argsort(t[:, 0])]  # noqa: E731 (order within a posterior is random)
    torch.testing.assert_close(sort(alone), sort(batch[:, 0]))


def test_far_observation_is_refused_in_both_modes():
    arm = simulators.get("arm")
    g = torch.Generator().manual_seed(5)
    far = torch.tensor([5.0, 5.0])
    for opts in ({"mode": "quantile"}, {"mode": "threshold", "eps": 0.05}):
        est = inference.fit(arm, method="abc", budget=20_000, options=opts, generator=g, progress=False)
        with pytest.raises(ValueError, match="increase --budget or eps") as e:
            est.posterior(far).sample(10, generator=g)
        assert "outside the range" in str(e.value) and "\n" not in str(e.value)


def test_threshold_mode_too_few_accepted_says_so():
    arm = simulators.get("arm")
    g = torch.Generator().manual_seed(6)
    est = inference.fit(
        arm, method="abc", budget=5_000, options={"mode": "threshold", "eps": 1e-3}, generator=g, progress=False
    )
    with pytest.raises(ValueError, match=r"ABC accepted only \d+ of 100 draws"):
        est.posterior(arm.simulate(torch.zeros(4))).sample(100, generator=g)


def test_options_validation():
    with pytest.raises(ValueError, match="needs eps"):
        ABCOptions(mode="threshold")
    with pytest.raises(ValueError, match="mode"):
        ABCOptions(mode="nearest")
    with pytest.raises(ValueError, match="unknown option 'epsilon'"):
        inference.make_options("abc", {"epsilon": 0.1})
    gm = simulators.get("gaussian-mixture")
    est = inference.fit(gm, method="abc", budget=100, progress=False, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="raise --budget"):
        est.posterior(_onehot(0)).sample(200)


def test_save_load_round_trip(tmp_path):
    arm = simulators.get("arm", variant="cumulative")
    est = inference.fit(
        arm,
        method="abc",
        budget=30_000,
        options={"mode": "quantile"},
        progress=False,
        generator=torch.Generator().manual_seed(7),
    )
    path = est.save(tmp_path / "abc")
    loaded = inference.load(path)
    assert isinstance(loaded, RejectionABC)
    assert loaded.options == est.options and loaded.budget == est.budget
    assert loaded.simulator.options == arm.options
    torch.testing.assert_close(loaded.x_scale, est.x_scale)
    x_o = arm.simulate(torch.tensor([0.1, 0.2, 0.3, -0.2]))
    a = est.posterior(x_o).sample(20, generator=torch.Generator().manual_seed(8))
    b = loaded.posterior(x_o).sample(20, generator=torch.Generator().manual_seed(8))
    torch.testing.assert_close(a, b)
