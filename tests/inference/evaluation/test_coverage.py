"""TARP and the calibration band, checked with exact, too-narrow and too-wide posteriors; and the headline of a
calibration report flags the last two (on a model with an exact posterior, docs/examples/lognormal_linear.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from inference.evaluation.calibration import calibrate
from inference.evaluation.coverage import calibration_band, tarp

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "docs" / "examples"))
import lognormal_linear  # noqa: E402


def _gaussian(scale: float, n_cases: int = 600, n: int = 400, seed: int = 0):
    """Posterior = prior N(0, I) (no data); draws scaled by ``scale`` about 0: 1 exact, < 1 too narrow, > 1 too wide."""
    rng = np.random.default_rng(seed)
    return scale * rng.normal(size=(n, n_cases, 2)), rng.normal(size=(n_cases, 2))


def test_tarp_is_on_the_diagonal_for_an_exact_posterior_and_off_it_otherwise():
    # at 600 cases the ECP of an exact posterior deviates by < ~0.06 (Kolmogorov-Smirnov 95%: 1.36 / sqrt(600))
    assert tarp(*_gaussian(1.0)).error < 1.36 / np.sqrt(600)
    assert tarp(*_gaussian(0.5)).error > 0.1 and tarp(*_gaussian(2.0)).error > 0.1


def test_calibration_band_bounds_an_exact_posterior_95_percent_of_the_time():
    from inference.evaluation.diagnostics import calibration_error

    band = calibration_band(300)
    errors = [calibration_error(*_gaussian(1.0, 300, 200, seed)).error_per_parameter[0] for seed in range(40)]
    # the band is the 95% quantile: of 40 exact runs, ~2 exceed it; > 8 would be 5 s.e. off
    assert np.mean(np.array(errors) > band) < 0.2
    assert calibration_band(3000) < band  # more cases, tighter band


class _Scaled:
    """An estimator returning the exact posterior of the lognormal example, widened or narrowed in log space."""

    method, options, budget = "exact-scaled", {}, None

    def __init__(self, scale: float) -> None:
        self.simulator, self.scale = lognormal_linear.simulator(), scale

    def posterior(self, x_o):
        outer = self

        class Post:
            has_log_prob = False

            def sample(self, n, *, generator=None):
                u = lognormal_linear.exact_posterior(x_o, n, generator=generator).log()
                return (u.mean(0) + outer.scale * (u - u.mean(0))).exp()

        return Post()


@pytest.mark.parametrize("scale, verdict", [(1.0, "within the exact posterior's band"), (0.6, "too narrow"),
                                            (1.6, "too wide")])  # fmt: skip
def test_the_headline_flags_too_narrow_and_too_wide_posteriors(scale, verdict):
    report = calibrate(_Scaled(scale), n_test=300, n_samples=200, n_resim=5, generator=torch.Generator().manual_seed(0))
    assert verdict in report.headline()
    assert (scale == 1.0) == (report.tarp_error < 1.36 / np.sqrt(300))  # Kolmogorov-Smirnov 95% at 300 cases
