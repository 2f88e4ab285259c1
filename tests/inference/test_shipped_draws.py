"""The shipped estimators give the same draws for the same generator as the release that recorded the fixture.

``tests/fixtures/shipped_draws.npz`` was written before the package was reorganized (issue 14: one house): for each
shipped estimator, three observations and 64 draws from ``posterior(x).sample(64, generator=seed 11)``; estimators
shipped later are recorded when they ship (``arm-distilled`` and ``arm-fmpe``, on ``arm-cinn``'s observations).
Moving code between modules must not change a single draw; the tolerance is float32 round-off (the same ops in the
same order give bitwise-equal results on one machine; 1e-5 relative leaves room for another CPU's kernels).
"""

from pathlib import Path

import numpy as np
import pytest
import torch

import inference
import zoo.estimators

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "shipped_draws.npz"


@pytest.mark.parametrize("name", zoo.estimators.names())
def test_shipped_estimator_draws_are_unchanged(name):
    data = np.load(FIXTURE)
    if f"{name}/x" not in data:
        pytest.fail(f"shipped estimator {name} has no recorded draws in {FIXTURE.name}; record them")
    est = inference.load(name)
    x = torch.as_tensor(data[f"{name}/x"])
    draws = est.posterior(x).sample(64, generator=torch.Generator().manual_seed(11)).numpy()
    np.testing.assert_allclose(draws, data[f"{name}/draws"], rtol=1e-5, atol=1e-5)
