"""Color-MNIST scoring in one room: the known fiber and p(c0) against which models and fiber samples are judged.

Used by ``zoo check``, ``benchmarks/models.py`` and ``benchmarks/fiber.py``.

For fiber samples x~ of targets x (Rousselot et al. 2026, section 3: consistency): the background colors c0 of the
samples against p(c0) (KL of per-channel histograms and the 3-D W2, each with the floor of exact fiber samples of the
same size), and the fiber loss under the exact color-MNIST subject ``decolorize``.

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
from typing import Any, NamedTuple

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

import simulators
from inference.fibers.metrics import nearest_neighbour
from simulators.color_mnist import background_color, colorize, decolorize, sample_colors
from zoo.priors import DiffusionPrior
from zoo.recipes import colored_digits, split_digits
from zoo.subjects import Subject

KL_BINS = 30
"""Histogram bins per channel of the color KL, for a few hundred samples (``zoo check``: 256)."""
SMALL_SAMPLE_BINS = 10
"""Bins per channel for a few dozen samples (the fiber benchmark: 48): the KL's floor at m = 48 is 0.35-0.48 with
10 bins; with 30 it would be dominated by empty bins."""
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


CHANNEL_FACTORS = {"recoloring": None, "contrast x0.8": 0.8, "contrast x0.5": 0.5, "flat": 0.0, "inverted": -1.0}
"""The perturbations of :func:`channel_sensitivity`: one channel's contrast around its background scaled by a factor
(``None``: a recoloring, i.e. a member of the exact fiber)."""


@torch.no_grad()
def channel_sensitivity(ae: Subject, *, seed: int = 1) -> dict[str, dict[str, float]]:
    """How the subject's fiber compares with the exact one: median fiber losses of per-channel perturbations.

    For each held-out digit x (recolored with ``seed``), one channel k (cycling over the digits) is changed as
    x_k' = c_k + f (x_k - c_k) (c the background, f in :data:`CHANNEL_FACTORS`) — or x is recolored — and the
    fiber loss under the subject, ||phi(x') - phi(x)||^2, is reported beside the loss under the exact map
    ``decolorize``; the row ``nearest other digit`` is the closest other held-out digit (same recoloring) under
    each map. A subject whose fiber is the exact one ranks the rows as ``decolorize`` does: every perturbation
    that is off the exact fiber costs about as much, relative to the nearest other digit, under both maps.
    """
    sim = simulators.get("color-mnist")
    _, test_idx = split_digits(len(sim.digits))
    x, _ = colored_digits(sim, test_idx, torch.Generator().manual_seed(seed), mixed=False)
    g = torch.Generator().manual_seed(seed + 1)
    h, grey = ae(x), decolorize(x)
    c = background_color(x)[..., None, None]
    k = torch.arange(len(x)) % 3
    out = {}
    for name, f in CHANNEL_FACTORS.items():
        if f is None:
            x2 = colorize(grey.mean(-3), sample_colors((len(x),), generator=g))
        else:
            x2 = x.clone()
            rows = torch.arange(len(x))
            x2[rows, k] = c[rows, k] + f * (x[rows, k] - c[rows, k])
        out[name] = {
            "subject": float((ae(x2) - h).pow(2).sum(-1).median()),
            "decolorize": float((decolorize(x2) - grey).pow(2).flatten(1).sum(-1).median()),
        }
    d_sub = torch.cdist(h.flatten(1), h.flatten(1)).pow(2).fill_diagonal_(float("inf"))
    d_dec = torch.cdist(grey.flatten(1), grey.flatten(1)).pow(2).fill_diagonal_(float("inf"))
    out["nearest other digit"] = {
        "subject": float(d_sub.min(-1).values.median()),
        "decolorize": float(d_dec.min(-1).values.median()),
    }
    return out


def channel_blindness(sensitivity: dict[str, dict[str, float]]) -> float:
    """The largest factor by which the subject underrates an off-fiber perturbation, relative to ``decolorize``.

    For each perturbation of :func:`channel_sensitivity` except the recoloring: (its decolorize loss / the nearest
    other digit's) / (its subject loss / the nearest other digit's). 1 means the subject ranks it as the exact map
    does; the shipped autoencoder of wave 1 (trained on tied channels only) scored 3.6 (contrast x0.8).
    """
    nn = sensitivity["nearest other digit"]
    ratios = [
        (v["decolorize"] / nn["decolorize"]) / max(v["subject"] / nn["subject"], 1e-30)
        for k, v in sensitivity.items()
        if k not in ("recoloring", "nearest other digit")
    ]
    return max(ratios)


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


class ColorConsistency(NamedTuple):
    """Background colors of fiber samples against p(c0): KL and W2, each with the floor of exact fiber samples."""

    kl: float
    w2: float
    kl_floor: float
    w2_floor: float


def color_consistency(
    samples: torch.Tensor, *, generator: torch.Generator | None = None, bins: int = KL_BINS, kl_reference: int = 20000
) -> ColorConsistency:
    """KL / W2 of the background colors of color-MNIST fiber samples (m, 3, H, W) against p(c0).

    ``bins`` histogram bins per channel on [0, 1] (fewer bins for small m lower the estimator's floor:
    :data:`SMALL_SAMPLE_BINS`). The KL reference is ``kl_reference`` draws of p(c0), the W2 reference m draws (an
    exact assignment needs equal sizes); the floors are the same statistics for m exact draws (the estimator's value
    when the samples are perfectly consistent), so a result is read against its floor.
    """
    m = samples.shape[0]
    c = background_color(samples.detach().float().cpu())
    ref_kl = sample_colors((kl_reference,), generator=generator)
    ref = sample_colors((m,), generator=generator)
    exact = sample_colors((m,), generator=generator)
    return ColorConsistency(
        color_kl(c, ref_kl, bins=bins), color_w2(c, ref), color_kl(exact, ref_kl, bins=bins), color_w2(exact, ref)
    )


TIE_TOLERANCE = 0.05
"""A channel's digit colour counts as tied when it is within this of (c0 + 0.5) mod 1 (the issue's target: 90%)."""


def digit_colors(samples: torch.Tensor, grey: torch.Tensor) -> torch.Tensor:
    """The digit colour of each channel of fiber samples (n, B, 3, H, W) of targets with grey digits (B, H, W).

    Least squares of x~_k = (1 - g) c_k + g d_k over the pixels, with g the target's grey digit and c_k the
    sample's background (its outer ring): exact for every recoloring of the target. Returns (n, B, 3).
    """
    g = grey[:, None].flatten(-2)  # (B, 1, HW)
    c = background_color(samples)[..., None]  # (n, B, 3, 1)
    r = samples.flatten(-2) - (1 - g) * c
    return (g * r).sum(-1) / g.pow(2).sum(-1).clamp(min=1e-12)


def color_tie_errors(samples: torch.Tensor, grey: torch.Tensor) -> torch.Tensor:
    """|digit colour - ((c0 + 0.5) mod 1)| per sample and channel, (n, B, 3): 0 on the exact fiber.

    The digit colour is :func:`digit_colors` (the target's digit shape), c0 the sample's background.
    """
    return (digit_colors(samples, grey) - torch.remainder(background_color(samples) + 0.5, 1.0)).abs()


class _Decolorize(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return decolorize(x)


def decolorize_nearest_neighbour(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """The fiber loss under ``decolorize`` of each target's nearest reference image under that map, shape (B,)."""
    return nearest_neighbour(Subject(_Decolorize()), x, reference).loss


def background_spread(samples: torch.Tensor) -> torch.Tensor:
    """Per target, the spread of its samples' background colours: the root mean over channels of their variance
    across samples (n, B, 3, H, W) -> (B,). Exact fiber samples have that of p(c0), 0.161."""
    return background_color(samples).var(0).mean(-1).sqrt()


def decolorize_fiber_loss(x_tilde: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The fiber loss under the exact color-MNIST subject ``decolorize``: samples (n, B, 3, H, W), x (B, 3, H, W).

    Returns shape (n, B): sum over pixels and channels of (decolorize(x~) - decolorize(x))^2.
    """
    return (decolorize(x_tilde) - decolorize(x)).pow(2).flatten(2).sum(-1)
