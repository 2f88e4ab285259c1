"""Contract over every registered fiber method: shapes, determinism, options, the result file, bad input.

Runs :func:`inference.fibers.sample_fibers` with each method at tiny settings on a tiny prior and subject (the ones
of ``test_ndtm``), so a newly registered method is picked up here without touching this file; give it tiny options
in ``FAST`` if its defaults are slow.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from inference.fibers import fiber_method_spec, fiber_methods, make_fiber_options, sample_fibers
from inference.results import read_fibers

from .test_ndtm import _prior, _subject

FAST = {
    "ndtm": {"num_steps": 2, "inner_steps": 1, "gamma": 10.0},
    "conditional": {"latent_dim": 4, "blocks": 1, "hidden": 8, "fiber_batch": 4, "steps": 3, "batch_size": 8},
}


def _reference() -> torch.Tensor:
    return torch.rand(24, 3, 8, 8, generator=torch.Generator().manual_seed(3))


def _run(method: str, seed: int = 0, **kw):
    spec = fiber_method_spec(method)
    return sample_fibers(
        _subject(),
        _reference()[:2],
        3,
        method=method,
        prior=_prior() if spec.needs_prior else None,
        options=FAST.get(method),
        reference=_reference(),
        seed=seed,
        **kw,
    )


def test_builtin_fiber_methods_are_registered():
    assert {"ndtm", "conditional"} <= set(fiber_methods())


@pytest.mark.parametrize("method", fiber_methods())
def test_fiber_method_contract(method, tmp_path):
    spec = fiber_method_spec(method)
    opts = make_fiber_options(method, FAST.get(method))
    assert dataclasses.is_dataclass(opts) and spec.description
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(opts, dataclasses.fields(opts)[0].name, None)
    res = _run(method)
    assert res.samples.shape == (1, 3, 2, 3, 8, 8) and res.fiber_loss.shape == (1, 3, 2)
    assert np.isfinite(res.samples).all() and np.isfinite(res.fiber_loss).all()
    assert set(res.baselines) == {"nearest_neighbour", "augmented"} and res.method == method
    # the recorded fiber loss is the subject's on the returned samples
    subject = _subject()
    with torch.no_grad():
        h = subject(torch.as_tensor(res.target))
        hs = subject(torch.as_tensor(res.samples[0]).reshape(6, 3, 8, 8)).reshape(3, 2, -1)
    np.testing.assert_allclose(res.fiber_loss[0], (hs - h).pow(2).sum(-1).numpy(), rtol=1e-4, atol=1e-5)
    again = _run(method)
    np.testing.assert_array_equal(res.samples, again.samples)  # determinism under a fixed seed
    back = read_fibers(res.save(tmp_path / "fibers.nc"))
    np.testing.assert_array_equal(back.samples, res.samples)
    assert back.method_options["n"] == 3


@pytest.mark.parametrize("method", fiber_methods())
def test_fiber_method_bad_input_is_one_line(method):
    with pytest.raises(ValueError) as e:
        make_fiber_options(method, {"no_such_option": 1})
    assert "no_such_option" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ValueError, match="-n must be >= 1"):
        sample_fibers(_subject(), _reference()[:1], 0, method=method, reference=None)


def test_unknown_fiber_method_lists_the_valid_ones():
    with pytest.raises(ValueError, match="valid fiber methods: .*ndtm"):
        fiber_method_spec("nope")
