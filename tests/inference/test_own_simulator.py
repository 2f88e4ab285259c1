"""Bringing one's own problem to the library: constrained priors through the support transform, training from a
table without a simulator, estimators whose simulator cannot be rebuilt, and the example with an exact posterior."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.distributions import Gamma, Normal, Uniform

import inference
import simulators
import simulators.files
from inference.posterior.cinn import ConditionalINN
from inference.posterior.support import SupportTransform
from simulators import specs

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "docs" / "examples"))
import lognormal_linear  # noqa: E402

TINY = {"blocks": 2, "hidden": 16, "summary_dim": 8, "summary_hidden": 16, "steps": 60, "batch_size": 128,
        "val_every": 30, "restarts": 1}  # fmt: skip


def test_support_transform_is_a_bijection_with_the_right_log_determinant():
    t = SupportTransform(torch.tensor([0.0, -math.inf, -1.0, -math.inf]), torch.tensor([math.inf, 2.0, 3.0, math.inf]))
    u = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2
    t = t.double()
    theta = t(u)
    assert (theta[:, 0] > 0).all() and (theta[:, 1] < 2).all() and ((theta[:, 2] > -1) & (theta[:, 2] < 3)).all()
    assert torch.allclose(t.inverse(theta), u, atol=1e-9)  # exact identity in float64
    for i in range(3):
        jac = torch.autograd.functional.jacobian(lambda v: t(v[None])[0], u[i])
        assert torch.allclose(torch.linalg.slogdet(jac).logabsdet, t.log_abs_det(u[i]), atol=1e-9)
    assert SupportTransform.from_config(t.config(), 4).config() == t.config()


def test_cinn_density_on_a_constrained_prior_is_the_change_of_variables():
    """log q(theta | x) = log q_u(log theta | x) - sum(log theta) for a positive support (t = exp)."""
    arch = {"summary": "mlp", "summary_dim": 4, "flow": {"blocks": 2, "hidden": 8}}
    sup = {"lo": [0.0, 0.0], "hi": [None, None]}
    constrained, plain = ConditionalINN(2, (3,), support=sup, **arch).double(), ConditionalINN(2, (3,), **arch).double()
    plain.load_state_dict(constrained.state_dict())
    g = torch.Generator().manual_seed(1)
    theta, x = (
        torch.rand(5, 2, generator=g, dtype=torch.float64) + 0.1,
        torch.randn(5, 3, generator=g, dtype=torch.float64),
    )
    expected = plain.log_prob(theta.log(), x) - theta.log().sum(-1)
    assert torch.allclose(constrained.log_prob(theta, x), expected, atol=1e-10)
    assert (constrained.sample(50, x, generator=g) > 0).all()


def test_exact_posterior_of_the_lognormal_example_matches_importance_sampling():
    """The analytic posterior against self-normalized importance sampling from the prior (its mean, 4 MC s.e.)."""
    sim = lognormal_linear.simulator()
    g = torch.Generator().manual_seed(3)
    x = sim.simulate(simulators.sample_prior(sim.prior, 1, generator=g), generator=g)[0]
    prior = simulators.sample_prior(sim.prior, 400_000, generator=g).double()
    resid = x.double() - lognormal_linear.noise_free(prior)
    w = torch.softmax(-0.5 * (resid**2).sum(-1) / lognormal_linear.SIGMA**2, 0)
    is_mean = (w[:, None] * prior).sum(0)
    exact = lognormal_linear.exact_posterior(x.double(), 20_000, generator=g)
    se = exact.std(0) / math.sqrt(1 / (w**2).sum())  # effective sample size of the weights
    assert ((exact.mean(0) - is_mean).abs() < 4 * se + 4 * exact.std(0) / math.sqrt(20_000)).all()


def test_cinn_on_a_constrained_user_prior_draws_inside_the_support():
    def model(theta, generator=None):
        return torch.cat([theta, theta.prod(-1, keepdim=True)], -1) + 0.1 * torch.randn(
            len(theta), 3, generator=generator
        )

    sim = simulators.from_function(model, [Gamma(2.0, 1.0), Uniform(-1.0, 1.0)])
    est = inference.fit(sim, method="cinn", budget=3000, options=TINY, generator=torch.Generator().manual_seed(0),
                        progress=False)  # fmt: skip
    assert est.model.architecture["support"] == {"lo": [0.0, -1.0], "hi": [None, 1.0]}
    draws = est.posterior(torch.tensor([[1.0, 0.0, 0.0], [3.0, 0.9, 2.7]])).sample(500)
    lo, hi = torch.tensor([0.0, -1.0]), torch.tensor([math.inf, 1.0])
    assert ((draws > lo) & (draws < hi)).all()


@pytest.mark.parametrize("method", ["cinn", "inn"])
def test_fit_from_a_table_without_a_simulator(method, tmp_path):
    sim = lognormal_linear.simulator()
    theta, x = simulators.simulate_cases(sim, 2500, seed=1)
    opts = TINY if method == "cinn" else {"blocks": 2, "hidden": 16, "steps": 40, "batch_size": 128, "val_size": 200}
    est = inference.fit(None, method=method, simulations=(theta, x), options=opts, param_names=["k1", "k2", "k3"],
                        generator=torch.Generator().manual_seed(0), progress=False)  # fmt: skip
    assert est.budget == 2500 and est.simulator.param_names == ("k1", "k2", "k3")
    assert est.posterior(x[:4]).sample(10).shape == (10, 4, 3)
    loaded = inference.load(est.save(tmp_path / "est"))
    assert not loaded.simulator.available and "table" in loaded.simulator.reason
    result = inference.infer(loaded, x[:2], n_samples=20)
    assert result.prior_draws is None and "no re-simulation" in result.notes[0]
    with pytest.raises(ValueError, match="trained from a table"):
        inference.infer(loaded, theta=theta[:1], n_samples=20)  # simulating needs the simulator


def test_a_method_that_cannot_use_a_table_says_which_can():
    with pytest.raises(ValueError, match="cannot train from a table of simulations; use cinn, fmpe, inn"):
        inference.fit(None, method="abc", simulations=(torch.rand(10, 2), torch.rand(10, 3)))


def test_saved_estimator_of_a_module_simulator_is_rebuilt_only_with_trust_code(tmp_path):
    sim = simulators.get(str(Path(lognormal_linear.__file__)) + ":simulator")
    est = inference.fit(sim, method="cinn", budget=2000, options=TINY, progress=False)
    path = est.save(tmp_path / "est")
    detached = inference.load(path)
    assert not detached.simulator.available and detached.simulator.param_names == sim.param_names
    assert detached.posterior(torch.zeros(4)).sample(5).shape == (5, 3)  # sampling works without the simulator
    with pytest.raises(specs.SimulatorUnavailable, match="--trust-code"):
        detached.simulator.simulate(torch.ones(3))
    assert inference.load(path, trust_code=True).simulator.name == "lognormal-linear"
    assert inference.load(path, simulator=sim).simulator is sim
    with pytest.raises(ValueError, match="param_names"):
        inference.load(path, simulator=simulators.get("arm"))


def test_no_silent_extrapolation(tmp_path):
    arm = simulators.get("arm", n_obs="2-12", noise_std=0.05)
    est = inference.fit(arm, method="cinn", budget=1000, options=TINY, progress=False)
    with pytest.raises(ValueError, match="holds sets of 13 elements; arm takes sets of 2 to 12"):
        est.posterior(torch.zeros(13, 2))
    sim = lognormal_linear.simulator()
    est = inference.fit(sim, method="cinn", budget=1000, options=TINY, progress=False)
    with pytest.raises(ValueError, match="outside the prior's support"):
        inference.infer(est, theta=torch.tensor([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match=r"shape \(\*, 4\)"):
        est.posterior(torch.zeros(3))


def test_read_simulations_from_h5_npz_csv(tmp_path):
    sim = lognormal_linear.simulator()
    out = simulators.simulate_table(sim, 50, tmp_path / "t.h5", progress=False)
    theta, x, names = simulators.files.read_simulations(out)
    assert theta.shape == (50, 3) and x.shape == (50, 4) and names == ("k1", "k2", "k3")
    np.savez(tmp_path / "t.npz", theta=theta.numpy(), x=x.numpy())
    t2, x2, _ = simulators.files.read_simulations(tmp_path / "t.npz")
    assert torch.equal(t2, theta) and torch.equal(x2, x)
    rows = "\n".join(",".join(f"{v:.6f}" for v in [*a, *b]) for a, b in zip(theta.tolist(), x.tolist()))
    (tmp_path / "t.csv").write_text("k1,k2,k3,x1,x2,x3,x4\n" + rows + "\n")
    t3, x3, n3 = simulators.files.read_simulations(tmp_path / "t.csv", theta_key="k1,k2,k3")
    assert torch.allclose(t3, theta, atol=1e-5) and x3.shape == (50, 4) and n3 == ("k1", "k2", "k3")
    with pytest.raises(ValueError, match="no dataset 'nope'"):
        simulators.files.read_simulations(out, theta_key="nope")
    np.save(tmp_path / "s.npy", np.array(["a", "b"]))
    with pytest.raises(ValueError, match="expected real numbers"):
        simulators.files.read_array(tmp_path / "s.npy", "x")


def test_python_end_to_end_with_a_one_vector_at_a_time_numpy_function(tmp_path):
    """from_function(vectorized=False) -> fit -> infer -> calibrate -> save / load, no registration anywhere."""
    from inference.evaluation.calibration import calibrate

    def program(theta, rng):  # one run of an "external program" per parameter vector
        return np.array([theta[0] * theta[1], theta[0] + theta[1]]) + 0.05 * rng.normal(size=2)

    sim = simulators.from_function(program, [Gamma(3.0, 3.0), Normal(0.0, 1.0)], vectorized=False, name="prog")
    est = inference.fit(sim, method="cinn", budget=1500, options=TINY, generator=torch.Generator().manual_seed(0),
                        progress=False)  # fmt: skip
    result = inference.infer(est, theta=torch.tensor([1.0, 0.5]), n_samples=200, n_predictive=20)
    assert np.isfinite(result.sample_stats["resimulation_error"][:, :20]).all() and (result.flat(0)[:, 0] > 0).all()
    report = calibrate(est, n_test=20, n_samples=100)
    assert report.result.n_observations == 20 and np.isfinite(report.error)
    loaded = inference.load(est.save(tmp_path / "prog"), simulator=sim)
    x = torch.tensor([[0.5, 1.5]])
    g = torch.Generator().manual_seed(4)
    assert torch.equal(
        loaded.posterior(x).sample(10, generator=g),
        est.posterior(x).sample(10, generator=torch.Generator().manual_seed(4)),
    )
