"""A user's own simulator: from_function (torch / NumPy, batched / one at a time), adapted objects, constrained
priors, support checks, and simulators named by module, file or entry point."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch.distributions import Beta, Gamma, Independent, LogNormal, MultivariateNormal, Normal, Uniform

import simulators
from simulators import specs


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_numpy_function_batched_is_reproducible_under_the_generator():
    def model(theta, rng):
        return theta[:, :1] * np.sin(theta[:, 1:2]) + 0.1 * rng.normal(size=(len(theta), 3))

    sim = simulators.from_function(model, [Gamma(2.0, 1.0), Normal(0.0, 1.0)], param_names=["a", "phase"])
    assert sim.obs_shape == (3,) and sim.param_names == ("a", "phase") and sim.array == "numpy"
    theta = simulators.sample_prior(sim.prior, 7, generator=_g())
    a, b = sim.simulate(theta, generator=_g(1)), sim.simulate(theta, generator=_g(1))
    assert a.shape == (7, 3) and torch.equal(a, b) and a.dtype == theta.dtype
    assert not torch.equal(a, sim.simulate(theta, generator=_g(2)))
    assert sim.simulate(theta.reshape(7, 1, 2)).shape == (7, 1, 3)  # batched over leading dimensions


def test_one_vector_at_a_time_function_matches_its_batched_form():
    calls = []

    def program(theta):  # an "external program": one parameter vector in, one observation out, no randomness
        calls.append(theta.shape)
        return np.array([theta[0] + theta[1], theta[0] * theta[1]])

    sim = simulators.from_function(program, [Uniform(0.0, 1.0), Uniform(1.0, 2.0)], vectorized=False)
    theta = torch.tensor([[0.5, 1.5], [0.25, 1.25]])
    x = sim.simulate(theta)
    assert all(s == (2,) for s in calls)
    assert torch.allclose(x, torch.stack([theta.sum(-1), theta.prod(-1)], -1))


def test_torch_function_without_a_generator_is_seeded_from_the_callers():
    def noisy(theta):  # draws from torch's global generator
        return theta + torch.randn(theta.shape)

    sim = simulators.from_function(noisy, Independent(Normal(torch.zeros(2), 1.0), 1))
    state = torch.get_rng_state()
    a, b = sim.simulate(torch.zeros(4, 2), generator=_g(5)), sim.simulate(torch.zeros(4, 2), generator=_g(5))
    assert torch.equal(a, b) and torch.equal(torch.get_rng_state(), state)  # the global state is left as it was


@pytest.mark.parametrize(
    "prior",
    [
        Independent(Gamma(torch.full((3,), 2.0), 1.0), 1),
        Independent(Beta(torch.full((2,), 2.0), torch.ones(2)), 1),
        Independent(LogNormal(torch.zeros(2), 1.0), 1),
        MultivariateNormal(torch.zeros(2), torch.tensor([[1.0, 0.5], [0.5, 2.0]])),
        [Gamma(2.0, 1.0), Normal(0.0, 1.0), Uniform(-1.0, 2.0)],
    ],
)
def test_constrained_priors_sample_reproducibly_inside_their_support(prior):
    p = simulators.as_prior(prior)
    a = simulators.sample_prior(p, 500, generator=_g())
    assert torch.equal(a, simulators.sample_prior(p, 500, generator=_g()))
    lo, hi = simulators.support_bounds(p)
    assert ((a >= lo) & (a <= hi)).all()
    simulators.check_support(p, a)


def test_support_bounds_and_one_line_errors_outside():
    p = simulators.joint([Gamma(2.0, 1.0), Normal(0.0, 1.0), Uniform(-1.0, 2.0)])
    lo, hi = simulators.support_bounds(p)
    assert lo.tolist() == [0.0, -math.inf, -1.0] and hi.tolist() == [math.inf, math.inf, 2.0]
    with pytest.raises(ValueError, match=r"outside the prior's support \[-1, 2\] of parameter 2") as e:
        simulators.check_support(p, torch.tensor([[1.0, 0.0, 3.0]]))
    assert "\n" not in str(e.value)
    sim = simulators.from_function(lambda t: t, p)
    with pytest.raises(ValueError, match="outside the prior's support"):
        sim.simulate(torch.tensor([-1.0, 0.0, 0.0]))


def test_bad_user_simulators_are_one_line_errors():
    with pytest.raises(ValueError, match="needs a prior"):
        simulators.as_simulator(lambda t: t)
    with pytest.raises(ValueError, match="lacks param_names, prior"):
        simulators.as_simulator(type("Half", (), {"name": "half", "simulate": lambda self, t: t})())
    with pytest.raises(ValueError, match="event shape"):
        simulators.as_prior(Normal(torch.zeros(2, 2), 1.0))
    with pytest.raises(ValueError, match="returned NaN"):
        simulators.from_function(lambda t: t * float("nan"), [Normal(0.0, 1.0)])
    with pytest.raises(ValueError, match="returned 1 rows for 2"):
        simulators.from_function(lambda t: t[:1], [Normal(0.0, 1.0)])


def test_an_object_without_generator_or_obs_shape_is_adapted():
    class Mine:
        name, param_names = "mine", ("a",)
        prior = Independent(Normal(torch.zeros(1), 1.0), 1)

        def simulate(self, theta):
            return theta + 0.1 * torch.randn(theta.shape)

        def log_likelihood(self, theta, x):  # optional capabilities pass through
            return -((x - theta) ** 2).sum(-1)

    sim = simulators.as_simulator(Mine())
    assert sim.obs_shape == (1,) and hasattr(sim, "log_likelihood")
    assert torch.equal(sim.simulate(torch.zeros(3, 1), generator=_g()), sim.simulate(torch.zeros(3, 1), generator=_g()))


MODULE = """
import torch
from torch.distributions import Gamma
import simulators

def make(scale: float = 1.0):
    return simulators.from_function(lambda t, generator=None: scale * t.log(), [Gamma(2.0, 1.0)] * 2, name="mine")
"""


def test_module_and_file_specs_build_and_record_how(tmp_path, monkeypatch):
    (tmp_path / "mysims_for_zoo.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    by_module = simulators.get("mysims_for_zoo:make", scale=2.0)
    assert by_module.zoo_record == {"kind": "module", "module": "mysims_for_zoo", "factory": "make",
                                    "options": {"scale": 2.0}}  # fmt: skip
    by_file = simulators.get(f"{tmp_path / 'mysims_for_zoo.py'}:make")
    rec = by_file.zoo_record
    assert rec["kind"] == "file" and len(rec["sha256"]) == 64
    x = torch.tensor([[1.0, math.e]])
    assert torch.allclose(by_module.simulate(x), 2 * x.log()) and torch.allclose(by_file.simulate(x), x.log())
    with pytest.raises(specs.SimulatorUnavailable, match="only with --trust-code"):
        specs.rebuild(rec, {})
    assert specs.rebuild(rec, {}, trust_code=True).name == "mine"
    (tmp_path / "mysims_for_zoo.py").write_text(MODULE + "\n# edited\n")
    with pytest.raises(specs.SimulatorUnavailable, match="changed since"):
        specs.rebuild(rec, {}, trust_code=True)


@pytest.mark.parametrize(
    "spec, match",
    [
        ("no_such_module_zoo:make", "cannot import module"),
        ("simulators:no_such_factory", "has no callable"),
        ("/no/such/file.py:make", "no file"),
        ("not a spec:x y", "neither a name"),
        ("nope", "valid names: arm"),
    ],
)
def test_bad_simulator_specs_are_one_line_errors(spec, match):
    with pytest.raises(ValueError, match=match) as e:
        simulators.get(spec)
    assert "\n" not in str(e.value)


def test_an_installed_plugin_appears_in_the_registry(tmp_path):
    """A package's entry point in the group zoo.simulators is listed and built by name (in a fresh process)."""
    (tmp_path / "zoo_plugin_demo.py").write_text(MODULE)
    dist = tmp_path / "zoo_plugin_demo-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: zoo-plugin-demo\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[zoo.simulators]\ndemo-sim = zoo_plugin_demo:make\n")
    code = textwrap.dedent(
        f"""
        import sys; sys.path.insert(0, {str(tmp_path)!r})
        import simulators
        assert "demo-sim" in simulators.names(), simulators.names()
        assert list(simulators.options("demo-sim")) == ["scale"]
        sim = simulators.get("demo-sim", scale=3.0)
        assert sim.zoo_record["kind"] == "entry_point" and sim.name == "mine"
        print("ok")
        """
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
