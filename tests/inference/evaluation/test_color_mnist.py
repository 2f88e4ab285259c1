"""Quality metrics (exact properties on constructed inputs) and the shipped models' quality (slow).

Exact: the W2 distance between a point set and its translate by d is |d| (the identity assignment is optimal for
a translation); the histogram KL of a set against itself is 0; the tie error of tied images is 0 up to float32
rounding (1e-5). Shipped-model thresholds are those of `zoo check` (stated in cli/check.py).
"""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

import simulators
import zoo
from inference.evaluation import color_mnist as quality
from simulators.color_mnist import sample_colors
from zoo import registry
from zoo_cli.main import main


def test_color_metrics_exact_cases():
    g = torch.Generator().manual_seed(0)
    c = sample_colors((200,), generator=g)
    d = torch.tensor([0.03, -0.04, 0.0])
    assert abs(quality.color_w2(c, c + d) - float(d.norm())) < 1e-6
    assert quality.color_kl(c, c) == 0.0
    assert quality.color_kl(c, c.flip(-1) * 0.5) > 1.0  # a clearly different distribution


def test_tie_error_separates_the_variants():
    g = torch.Generator().manual_seed(0)
    tied = simulators.get("color-mnist").sample(64, generator=g)
    ood = simulators.get("color-mnist", variant="ood").sample(64, generator=g)
    assert quality.tie_error(tied) < 1e-5
    assert quality.tie_error(ood) > 0.1


def test_list_models_shows_every_shipped_model():
    res = CliRunner().invoke(main, ["list", "--models"])
    assert res.exit_code == 0, res.output
    for name in registry.names():
        info = registry.info(name)
        assert name in res.output and info["trained_on"] in res.output


@pytest.mark.slow
def test_shipped_models_pass_zoo_check():
    res = CliRunner().invoke(main, ["check", "--n", "256", "--steps", "50"])
    assert res.exit_code == 0, res.output
    assert res.output.count("PASS") == 4 and "FAIL" not in res.output


@pytest.mark.slow
def test_ddpm_samples_are_recognized_as_digits():
    classifier = zoo.load("digits-classifier", role="subject")
    r = quality.prior_report(
        zoo.load("color-mnist-ddpm", role="prior"),
        classifier,
        variant="tied",
        n=256,
        num_steps=50,
        generator=torch.Generator().manual_seed(1),
    )
    assert r["prior"]["recognized"] >= 0.6  # the rate stated in docs/zoo.md and cli/check.py
    assert r["simulator"]["recognized"] >= 0.95  # the classifier itself recognizes real draws
