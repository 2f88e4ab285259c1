"""Contract tests over every registered (shipped) model: load, save / reload, gradients, Tweedie identity.

Round trips compare outputs bitwise (same weights, same code). The Tweedie check compares two code paths of the
same float32 formula (atol 1e-5 relative to values of order 1).
"""

from __future__ import annotations

import copy

import pytest
import torch

import simulators
import zoo
from zoo import DiffusionPrior, Subject, registry


@pytest.fixture(scope="module", params=registry.BUILTIN)
def model(request):
    return request.param, zoo.load(request.param)


def _images(n=3, variant="tied"):
    return simulators.get("color-mnist", variant=variant).sample(n, generator=torch.Generator().manual_seed(0))


def test_registered_model_loads_with_its_metadata(model):
    name, m = model
    info = registry.info(name)
    assert m.role == info["role"] and m.meta["role"] == info["role"]
    assert info["command"].startswith(f"zoo train {info['role']} {name}")
    assert isinstance(m.meta["training"]["seed"], int)
    assert m.meta["input"]["shape"] == [3, 16, 16]
    assert info["size_bytes"] < 5_000_000


def test_save_reload_gives_identical_outputs(model, tmp_path):
    name, m = model
    zoo.save(m, tmp_path / name)
    back = zoo.load(tmp_path / name, role=m.role)
    x = _images()
    if isinstance(m, DiffusionPrior):
        x_t = m.from_data(x)
        for t in (999, 500, 10):
            torch.testing.assert_close(back.x0_estimate(x_t, t), m.x0_estimate(x_t, t), atol=0, rtol=0)
    else:
        torch.testing.assert_close(back(x), m(x), atol=0, rtol=0)
    assert back.meta["training"] == m.meta["training"]


def test_gradients_flow(model):
    name, m = model
    x = _images().requires_grad_(True)
    if isinstance(m, DiffusionPrior):
        ts = m.timesteps(10)
        x_t = m.noise(m.from_data(x), ts[2], generator=torch.Generator().manual_seed(1))
        h = m.x0_estimate(x_t, ts[2]).pow(2).sum() + m.step(x_t, ts[2], ts[3]).sum()
    else:
        assert isinstance(m, Subject)
        h = m(x).pow(2).sum()
    h.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_tweedie_identity_against_the_scheduler(model):
    name, m = model
    if not isinstance(m, DiffusionPrior):
        pytest.skip("subjects have no scheduler")
    sched = copy.deepcopy(m.scheduler)
    sched.set_timesteps(25)
    x_t = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    for t in sched.timesteps[[0, 12, 24]]:
        out = m.model_output(x_t, t)
        ref = sched.step(out, t, x_t, generator=torch.Generator().manual_seed(3)).pred_original_sample
        # the shipped scheduler clips x0 to [-1, 1] inside its step; x0_estimate is the unclipped Tweedie mean
        torch.testing.assert_close(m.x0_estimate(x_t, t, model_output=out).clamp(-1, 1), ref, atol=1e-5, rtol=1e-5)


def test_subject_outputs_have_the_recorded_meaning(model):
    name, m = model
    x = _images(4)
    if name == "color-mnist-ae":
        # phi(x) = encoder(decolorize(x)): every recoloring of a digit has the same features (the fiber)
        sim = simulators.get("color-mnist")
        rec = sim.fiber_sample(x, 3, generator=torch.Generator().manual_seed(4))  # (3, 4, 3, 16, 16)
        h, h_rec = m(x), m(rec.reshape(-1, 3, 16, 16)).reshape(3, 4, -1)
        torch.testing.assert_close(h_rec, h.expand(3, *h.shape), atol=1e-4, rtol=1e-4)
    elif name == "digits-classifier":
        assert m(x).shape == (4, 10)
        assert m.meta["classes"] == [str(i) for i in range(10)]
    else:
        pytest.skip("a prior")
