"""Quality checks of the shipped color-MNIST models (used by ``zoo check`` and ``benchmarks/models.py``).

For a prior's samples x ~ p_theta:
    recognition   share of samples the digits classifier assigns a class with probability >= 0.9, and the largest
                  deviation of the predicted class frequencies from the data's;
    color KL      sum over the three channels of KL(hist of generated c0 || hist of p(c0)) (30 bins on [0, 1];
                  p(c0) is a product of independent channel mixtures, so the channel marginals carry it);
    color W2      the 3-D 2-Wasserstein distance between generated c0 and as many draws of p(c0) (exact optimal
                  assignment);
    tie error     mean over pixels of the spread across channels of decolorize(x) (0 when the digit color is
                  (c0 + 0.5) mod 1, as in the ``tied`` variant).
Every number comes with its baseline: the same statistic for as many fresh simulator samples, i.e. the floor of
the estimator at that sample size.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

import simulators
from simulators.color_mnist import background_color, decolorize, sample_colors
from zoo.priors import DiffusionPrior
from zoo.recipes import colored_digits, split_digits
from zoo.subjects import Subject

KL_BINS = 30
CONFIDENT = 0.9


def color_kl(c: torch.Tensor, c_ref: torch.Tensor, *, bins: int = KL_BINS) -> float:
    """Sum over channels of the histogram KL(c || c_ref) for colors (n, 3), (m, 3) in [0, 1].

    Empty reference bins get half a count (so the KL stays finite).
    """
    total = 0.0
    edges = torch.linspace(0, 1, bins + 1)
    for k in range(c.shape[-1]):
        p = torch.histogram(c[:, k].clamp(0, 1).float().cpu(), edges).hist + 0.5
        q = torch.histogram(c_ref[:, k].clamp(0, 1).float().cpu(), edges).hist + 0.5
        p, q = p / p.sum(), q / q.sum()
        total += float((p * (p / q).log()).sum())
    return total


def color_w2(c: torch.Tensor, c_ref: torch.Tensor) -> float:
    """The 2-Wasserstein distance between two equal-size point sets (n, 3) (exact assignment)."""
    a, b = c.double().cpu(), c_ref.double().cpu()
    cost = torch.cdist(a, b).pow(2).numpy()
    i, j = linear_sum_assignment(cost)
    return math.sqrt(float(cost[i, j].mean()))


def tie_error(x: torch.Tensor) -> float:
    """Mean over pixels of the channel spread (std) of decolorize(x), x (n, 3, H, W)."""
    return float(decolorize(x).std(-3).mean())


@torch.no_grad()
def recognition(classifier: Subject, x: torch.Tensor) -> tuple[float, torch.Tensor]:
    """Share of images whose top class probability is >= 0.9, and the predicted class frequencies (10,)."""
    p = classifier.module(x).softmax(-1)
    conf, cls = p.max(-1)
    freq = torch.bincount(cls, minlength=p.shape[-1]).float() / len(x)
    return float((conf >= CONFIDENT).float().mean()), freq


def prior_report(
    prior: DiffusionPrior,
    classifier: Subject,
    *,
    variant: str,
    n: int = 256,
    num_steps: int = 50,
    generator: torch.Generator | None = None,
) -> dict[str, Any]:
    """Sample ``n`` images from ``prior`` and score them (and the simulator baseline) as in the module docstring."""
    sim = simulators.get("color-mnist", variant=variant)
    t0 = time.perf_counter()
    x = prior.sample(n, num_steps=num_steps, eta=0.0, generator=generator).clamp(0, 1)
    seconds = time.perf_counter() - t0
    x_ref = sim.sample(n, generator=generator)
    c_p = sample_colors((max(20_000, n),), generator=generator)
    c_w = sample_colors((n,), generator=generator)
    freq_data = torch.bincount(sim.labels, minlength=10).float() / len(sim.labels)
    out: dict[str, Any] = {"n": n, "num_steps": num_steps, "images_per_second": n / seconds}
    for tag, imgs in (("prior", x), ("simulator", x_ref)):
        c = background_color(imgs)
        rate, freq = recognition(classifier, imgs)
        out[tag] = {
            "recognized": rate,
            "class_freq_max_dev": float((freq - freq_data).abs().max()),
            "color_kl": color_kl(c, c_p),
            "color_w2": color_w2(c, c_w),
            "tie_error": tie_error(imgs),
        }
    return out


@torch.no_grad()
def autoencoder_report(ae: Subject, *, seed: int = 1) -> dict[str, float]:
    """Reconstruction RMSE of decolorize(x) on the held-out digits (recolored with ``seed``), and its floor 0."""
    sim = simulators.get("color-mnist")
    _, test_idx = split_digits(len(sim.digits))
    x, _ = colored_digits(sim, test_idx, torch.Generator().manual_seed(seed), mixed=False)
    net = ae.module
    grey = decolorize(x)
    err = net.decode(net(x)) - grey
    return {
        "rmse": float(err.pow(2).mean().sqrt()),
        "max_abs": float(err.abs().max()),
        "psnr_db": float(-10 * np.log10(float(err.pow(2).mean()))),
        "held_out": len(test_idx),
    }


@torch.no_grad()
def classifier_report(classifier: Subject, *, seed: int = 1) -> dict[str, float]:
    """Held-out accuracy on tied and on independently colored digits."""
    sim = simulators.get("color-mnist")
    _, test_idx = split_digits(len(sim.digits))
    out = {}
    for mixed in (False, True):
        x, y = colored_digits(sim, test_idx, torch.Generator().manual_seed(seed), mixed=mixed)
        out["accuracy_mixed" if mixed else "accuracy_tied"] = float(
            (classifier.module(x).argmax(-1) == y).float().mean()
        )
    out["held_out"] = len(test_idx)
    return out
