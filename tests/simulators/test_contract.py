"""Contract tests run over every registered simulator: shapes, batching, determinism, dtype/device, bad input."""

import math

import pytest
import torch

import simulators

NAMES = simulators.names()


@pytest.fixture(params=NAMES)
def sim(request):
    return simulators.get(request.param)


def test_registry_lists_the_builtins():
    assert {"arm", "gaussian-mixture", "color-mnist"} <= set(NAMES)


def test_protocol_and_prior_shape(sim):
    assert isinstance(sim, simulators.Simulator)
    d = len(sim.param_names)
    assert tuple(sim.prior.event_shape) == (d,)
    assert sim.name in NAMES


def test_batched_over_extra_leading_dimensions(sim, generator):
    d = len(sim.param_names)
    theta = simulators.sample_prior(sim.prior, (3, 5), generator=generator)
    assert theta.shape == (3, 5, d)
    x = sim.simulate(theta, generator=generator)
    assert x.shape == (3, 5, *sim.obs_shape)
    single = sim.simulate(theta[1, 2], generator=torch.Generator().manual_seed(0))
    assert single.shape == tuple(sim.obs_shape)


def test_deterministic_under_a_fixed_generator(sim):
    def draw():
        g = torch.Generator().manual_seed(7)
        theta = simulators.sample_prior(sim.prior, (64,), generator=g)
        return theta, sim.simulate(theta, generator=g)

    (t1, x1), (t2, x2) = draw(), draw()
    assert torch.equal(t1, t2) and torch.equal(x1, x2)


def test_dtype_follows_input(sim, generator):
    theta = simulators.sample_prior(sim.prior, (8,), generator=generator).double()
    x = sim.simulate(theta, generator=generator)
    assert x.dtype == torch.float64


@pytest.mark.gpu
def test_device_follows_input(sim):
    theta = simulators.sample_prior(sim.prior, (8,), generator=torch.Generator().manual_seed(0)).cuda()
    assert sim.simulate(theta).device.type == "cuda"


def test_wrong_shape_raises_naming_expected_shape(sim):
    d = len(sim.param_names)
    with pytest.raises(ValueError, match=rf"\(\*, {d}\)"):
        sim.simulate(torch.zeros(4, d + 1))


def test_nan_raises(sim, generator):
    theta = simulators.sample_prior(sim.prior, (4,), generator=generator)
    theta[2, 0] = math.nan
    with pytest.raises(ValueError, match="finite"):
        sim.simulate(theta)


def test_reference_posterior_shape(sim, generator):
    if not hasattr(sim, "reference_posterior"):
        pytest.skip(f"{sim.name} has no reference posterior")
    theta = simulators.sample_prior(sim.prior, (2,), generator=generator)
    x = sim.simulate(theta, generator=generator)
    s = sim.reference_posterior(x, 16, generator=generator)
    assert s.shape == (16, 2, len(sim.param_names))


def test_unknown_name_and_option_list_the_valid_ones():
    with pytest.raises(simulators.UnknownSimulatorError, match="valid names: .*arm"):
        simulators.get("armm")
    with pytest.raises(simulators.UnknownSimulatorError, match="valid options: variant"):
        simulators.get("arm", varient="x")
