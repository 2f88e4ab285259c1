"""Classifier calibration metrics against constructed truth: a perfectly calibrated synthetic classifier (labels
drawn from its own probabilities) has an ECE within the consistency-resampling spread of 0; a too-confident one
(the same logits doubled) lies far outside it; the thesis' bin edges; the midpoint centre's bias."""

from __future__ import annotations

import numpy as np
import pytest

from inference.evaluation.classifier import (
    THESIS_EDGES,
    calibration,
    consistency_ece,
    entropy,
    entropy_increase,
)


def synthetic(n: int = 3000, k: int = 10, sharpen: float = 1.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2, (n, k))
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    y = (rng.uniform(size=(n, 1)) > p.cumsum(1)).sum(1).clip(max=k - 1)  # labels from the probabilities
    q = np.exp(sharpen * (logits - logits.max(1, keepdims=True)))
    return q / q.sum(1, keepdims=True), y


def test_thesis_bin_edges():
    assert len(THESIS_EDGES) == 20 and THESIS_EDGES[0] == 0 and THESIS_EDGES[-1] == 1
    np.testing.assert_allclose(np.diff(THESIS_EDGES)[:5], 0.01)
    np.testing.assert_allclose(np.diff(THESIS_EDGES)[5:14], 0.1)
    np.testing.assert_allclose(np.diff(THESIS_EDGES)[14:], 0.01)


def test_a_calibrated_classifier_has_ece_within_sampling_error_of_zero():
    p, y = synthetic()
    c = calibration(p, y)
    null = consistency_ece(p, draws=100)
    assert c.ece <= np.quantile(null, 0.99), (c.ece, np.quantile(null, 0.99))
    assert c.ece < 0.01 and 0 <= c.ice <= c.mce <= 1


def test_a_too_confident_classifier_is_clearly_above():
    p, y = synthetic(sharpen=2.0)
    c = calibration(p, y)
    null = consistency_ece(synthetic()[0], draws=100)
    assert c.ece > 5 * np.quantile(null, 0.99)
    # measured ECE / MCE / OCE 0.047 / 0.308 / 25 here; the calibrated synthetic gives 0.005 / 0.039 / undefined (no
    # prediction reaches 99.7 %): the thresholds sit between, at about half the too-confident values
    assert c.mce > 0.15 and c.oce > 2  # its 99.7 %-confident predictions fail more than twice as often as they claim


def test_the_midpoint_centre_is_biased_where_probabilities_sit_off_centre():
    rng = np.random.default_rng(1)
    p1 = np.full(20000, 0.07)  # calibrated, in the bin [0.05, 0.15) whose centre is 0.10
    y = (rng.uniform(size=p1.size) < p1).astype(int)
    p = np.stack([1 - p1, p1], 1)
    mean, mid = calibration(p, y), calibration(p, y, centre="midpoint")
    assert mean.ece < 0.005 and mid.ece > 0.01


def test_entropy_and_its_increase():
    uniform, sure = np.full((3, 4), 0.25), np.eye(4)[:3]
    np.testing.assert_allclose(entropy(uniform), np.log(4))
    np.testing.assert_allclose(entropy(sure), 0, atol=1e-9)
    assert entropy_increase(sure, uniform) == pytest.approx(np.log(4))


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="sum to 1"):
        calibration(np.full((2, 3), 0.5), np.array([0, 1]))
    with pytest.raises(ValueError, match="labels"):
        calibration(np.full((2, 2), 0.5), np.array([0, 2]))
    with pytest.raises(ValueError, match="centre"):
        calibration(np.full((2, 2), 0.5), np.array([0, 1]), centre="bin")
