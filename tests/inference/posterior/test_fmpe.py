"""Flow-matching posterior estimation: the ODE against an exact field, a learned posterior against the exact one,
solvers, options and errors.

Accuracy on the arm and the sbibm tasks (C2ST against exact reference draws) is measured by benchmarks/vs_sbi.py and
benchmarks/sbibm.py; here the checks are fast and scored against closed-form truth.
"""

import math

import pytest
import torch

import inference
import simulators
from inference.posterior.fmpe import FMPEOptions, VectorFieldNet

M, S, SIGMA = torch.tensor([0.5, -1.0]), torch.tensor([0.3, 1.5]), 1e-4


class ExactGaussianField(VectorFieldNet):
    """The exact OT-path field of a N(M, S^2) target, ignoring the observation: the marginal at t is
    N(t M, a_t^2 + t^2 S^2), a_t = 1 - (1 - sigma) t, whose flow is v = M + (a_t a_t' + t S^2) / var_t (u - t M)."""

    def field(self, u, t, terms):
        a, da = 1 - (1 - SIGMA) * t, -(1 - SIGMA)
        var = a**2 + t**2 * S**2
        return M + (a * da + t * S**2) / var * (u - t * M)


def _exact():
    return ExactGaussianField(2, (1,), field={"hidden": 8, "blocks": 1}).double()  # its layers are never used


@pytest.mark.parametrize(("solver", "steps", "tol"), [("dopri5", 0, 0.01), ("rk4", 16, 0.01), ("euler", 64, 0.05)])
def test_the_ode_with_the_exact_field_draws_the_target(solver, steps, tol):
    model = _exact()
    h = model.summarize(torch.zeros(1, 1, dtype=torch.float64))
    draws = model.sample_given(20_000, h, generator=torch.Generator().manual_seed(0), solver=solver, steps=steps or 16)
    sd = torch.sqrt(S**2 + SIGMA**2).double()
    # mean: 4 standard errors of 20 000 draws; sd: the sampling error of an sd (0.5% at 20 000 draws) plus the solver's
    # discretization: measured 0.8% for dopri5 / RK4-16 (sampling error alone) and 2.2% for Euler-64
    torch.testing.assert_close(draws[:, 0].mean(0), M.double(), atol=4 * float(sd.max()) / math.sqrt(20_000), rtol=0)
    torch.testing.assert_close(draws[:, 0].std(0), sd, atol=0, rtol=tol)


def test_log_prob_with_the_exact_field_is_the_exact_density():
    model = _exact()
    h = model.summarize(torch.zeros(1, 1, dtype=torch.float64))
    theta = torch.randn(50, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2
    got = model.log_prob_given(theta, h, rtol=1e-8, atol=1e-8)
    sd = torch.sqrt(S**2 + SIGMA**2).double()
    want = torch.distributions.Normal(M.double(), sd).log_prob(theta).sum(-1)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)


@pytest.fixture(scope="module")
def linear():
    """FMPE on a 2-D gaussian-linear task, whose posterior N(x / 2, 0.05 I) is known."""
    sim = simulators.get("gaussian-linear", dim=2)
    opts = {"hidden": 64, "blocks": 2, "summary_dim": 8, "summary_hidden": 32, "steps": 1500, "val_every": 250}
    est = inference.fit(
        sim, method="fmpe", budget=4000, options=opts, generator=torch.Generator().manual_seed(0), progress=False
    )
    return sim, est


def test_fmpe_learns_the_exact_gaussian_posterior(linear):
    sim, est = linear
    x_o = torch.tensor([[0.3, -0.2], [-0.5, 0.1], [0.0, 0.6]])
    draws = est.posterior(x_o).sample(4000, generator=torch.Generator().manual_seed(1))
    assert draws.shape == (4000, 3, 2)
    sd = math.sqrt(0.05)
    torch.testing.assert_close(draws.mean(0), x_o / 2, atol=0.04, rtol=0)  # 0.18 posterior sd
    torch.testing.assert_close(draws.std(0), torch.full((3, 2), sd), atol=0, rtol=0.08)


def test_log_prob_is_close_to_the_exact_log_density(linear):
    sim, est = linear
    x_o = torch.tensor([[0.3, -0.2]])
    theta = x_o / 2 + math.sqrt(0.05) * torch.randn(200, 1, 2, generator=torch.Generator().manual_seed(2))
    got = est.posterior(x_o).log_prob(theta)
    want = torch.distributions.Normal(x_o / 2, math.sqrt(0.05)).log_prob(theta).sum(-1)
    assert got.shape == (200, 1)
    assert float((got - want).abs().median()) < 0.15


def test_solvers_agree_and_are_deterministic(linear):
    _, est = linear
    post = est.posterior(torch.tensor([0.3, -0.2]))
    draws = {
        (s, k): post.sample(500, generator=torch.Generator().manual_seed(3), solver=s, steps=k)
        for s, k in (("dopri5", None), ("rk4", 16), ("midpoint", 16), ("euler", 32))
    }
    for key, d in draws.items():
        assert d.shape == (500, 2)
        assert float((d - draws[("dopri5", None)]).abs().max()) < (0.05 if key[0] == "euler" else 0.01), key
    again = post.sample(500, generator=torch.Generator().manual_seed(3), solver="rk4", steps=16)
    assert torch.equal(again, draws[("rk4", 16)])


def test_draws_stay_in_a_bounded_prior():
    sim = simulators.get("two-moons")
    opts = {"hidden": 32, "blocks": 1, "summary_dim": 8, "summary_hidden": 16, "steps": 50, "val_every": 0}
    est = inference.fit(sim, method="fmpe", budget=1000, options=opts, progress=False)
    draws = est.posterior(torch.tensor([[0.0, 0.1], [0.2, -0.3]])).sample(300, solver="euler", steps=4)
    assert (draws.abs() <= 1).all()


def test_set_valued_observations():
    sim = simulators.get("arm", noise_std=0.3, n_obs="1-8")
    opts = {"hidden": 32, "blocks": 1, "summary_dim": 8, "summary_hidden": 16, "steps": 30, "val_every": 10}
    est = inference.fit(sim, method="fmpe", budget=1000, options=opts, progress=False)
    for k in (1, 5, 8):
        assert est.posterior(torch.zeros(3, k, 2)).sample(7, solver="rk4", steps=4).shape == (7, 3, 4)


@pytest.mark.parametrize(
    ("option", "match"),
    [
        ({"solver": "rk45"}, "solver must be one of"),
        ({"ode_steps": 0}, "ode_steps must be an integer"),
        ({"sigma_min": 0}, r"sigma_min must be a number in \(0, 1\)"),
        ({"rtol": float("nan")}, "rtol"),
        ({"time_power": -1}, "time_power"),
        ({"hidden": True}, "hidden must be an integer"),
        ({"summary": "gru"}, "summary must be one of"),
        ({"online": "yes"}, "online must be true or false"),
        ({"restarts": 2}, "restarts must be 1"),
    ],
)
def test_bad_options_are_refused_in_one_line(option, match):
    with pytest.raises(ValueError, match=match):
        inference.make_options("fmpe", option)


def test_default_options_are_valid():
    opts = FMPEOptions()
    assert opts.solver == "dopri5" and opts.train.steps == 20_000
