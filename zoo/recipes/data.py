"""Training data of the shipped models' recipes: data sources by name, the fixed train / held-out split, batches.

A data source is what a recipe trains on (``Recipe.data``, a name in :data:`DATA`). It is built from the recipe's
variant and an optional local data path, and provides ``sample(n, generator)`` (images), ``digits`` / ``labels``
(the grey-level images and their classes, for the autoencoder and classifier recipes) and ``image_shape``. Today
the one source is color-MNIST (:class:`simulators.ColorMNIST`); a recipe on other data registers its own.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch

import simulators
from simulators import Registry
from simulators.color_mnist import colorize, digit_color, sample_colors

HELD_OUT = 0.15
"""Share of the digits held out (the last of a fixed permutation) for the reported metrics."""

DATA: Registry[Callable[..., Any]] = Registry("recipe data source")
DATA.register("color-mnist", lambda variant, path=None: simulators.get("color-mnist", variant=variant, data=path))
DATA.register("gaussian-mixture", lambda variant, path=None: _mixture(variant, path))


def _mixture(labels: str, path: str | os.PathLike | None) -> Any:
    """The Gaussian mixture's labelled points (``variant`` = the label map); there are no files to read."""
    if path is not None:
        raise ValueError("--data reads MNIST files; the gaussian-mixture recipes draw their points from the simulator")
    return simulators.get("gaussian-mixture", labels=labels)


def labelled_points(sim: Any, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n points of the Gaussian mixture with their labels (the label map's class of the generating mode)."""
    x = simulators.sample_prior(sim.prior, n, generator=g)
    return x, sim.simulate(x, generator=g).argmax(-1)


def data_source(name: str, variant: str, path: str | os.PathLike | None = None) -> Any:
    """The data source ``name`` (see :data:`DATA`) for a recipe's ``variant``, from ``path`` when given."""
    return DATA.get(name)(variant, path)


def split_digits(n: int, *, held_out: float = HELD_OUT) -> tuple[torch.Tensor, torch.Tensor]:
    """Train / held-out indices of ``n`` digits: a fixed permutation (seed 0), the last ``held_out`` share held out."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    k = int(round(n * (1 - held_out)))
    return perm[:k], perm[k:]


def data_generator(seed: int, step: int) -> torch.Generator:
    # One generator per step, so that a resumed run sees the same batches as an uninterrupted one.
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def colored_digits(sim, idx: torch.Tensor, g: torch.Generator, *, mixed: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Random recolorings of the digits ``idx`` (tied colors; with ``mixed`` half get an independent digit color)."""
    grey, labels = sim.digits[idx], sim.labels[idx]
    c0 = sample_colors((len(idx),), generator=g)
    c1 = digit_color(c0)
    if mixed:
        other = digit_color(sample_colors((len(idx),), generator=g))
        c1 = torch.where(torch.rand(len(idx), 1, generator=g) < 0.5, other, c1)
    return colorize(grey, c0, c1), labels
