"""The cINN's options: architecture, summary, validation, restarts, distillation from an FMPE teacher, training."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from inference.networks.summary import SUMMARIES
from zoo.training import TrainConfig

SMALL_BUDGET = 50_000
"""Budgets below this get wider coupling subnetworks by default (``hidden`` 48 rather than 32): at 1e4 simulations
on the arm, 10 x 32 networks are too wide (calibration 0.40-1.34% alone, 1.49% as the best of 3 restarts) and
10 x 48 ones are not (0.32-0.68%, 0.45%); at 1e5 the 10 x 32 recipe of ``arm-cinn`` is calibrated (0.57%)."""
COUPLINGS = ("affine", "spline")
VAL_STATISTICS = ("median", "mean")
RESTART_CRITERIA = ("parameters", "pooled")
TRAIN = TrainConfig(steps=10_000, batch_size=512, lr=1e-3, schedule="cosine", grad_clip=10.0, val_every=500, restarts=3)
"""The cINN's training defaults: Adam, cosine schedule to 1%, gradient norm clipped at 10, validation every 500
steps, the best of 3 restarts by held-out calibration (the shipped ``arm-cinn`` recipe; docs/own-simulator.md has
what they give at 1e4 and 1e5 simulations)."""


@dataclass(frozen=True)
class CINNOptions:
    """Options of the conditional INN.

    Attributes:
        coupling: ``"affine"`` (soft-clamped affine coupling) or ``"spline"`` (rational-quadratic spline coupling).
        blocks: coupling blocks.
        hidden: hidden width of the coupling subnetworks; ``None`` (default) scales with the budget: 48 below
            :data:`SMALL_BUDGET` simulations, else 32 (measured at 1e4 and 1e5: docs/own-simulator.md).
        layers: hidden layers per subnetwork.
        clamp: soft clamp of the affine log-scales (thesis eq. 3.13).
        bins: spline bins (``coupling="spline"``).
        actnorm: an ActNorm (learned per-dimension scale and shift) before every block.
        summary: ``"auto"`` (``"deepset"`` for set-valued simulators, else ``"mlp"``), ``"deepset"``, ``"mlp"``,
            ``"conv1d"`` or ``"none"``.
        summary_dim: summary width (the condition width of the flow).
        summary_hidden: hidden width of the summary network.
        val_fraction: share of the budget held out for validation, early stopping, restarts and the misspecification
            score.
        val_statistic: ``"median"`` or ``"mean"`` of the held-out negative log-likelihood, the criterion that picks
            the kept weights (the median is robust to the few held-out points that a near-degenerate posterior misses).
        restart_criterion: how restarts are compared on the held-out simulations: ``"parameters"``, the mean over
            parameters of each parameter's calibration error, or ``"pooled"``, the calibration error of the inlier
            fractions pooled over parameters (where one parameter too wide and another too narrow cancel).
        online: draw fresh simulations for every batch (the budget then only sizes the validation set);
            with no budget, training is always online.
        teacher: a trained FMPE estimator of the same simulator (a directory or a shipped name) to distill
            (:mod:`inference.posterior.cinn.distill`): the cINN then learns the teacher's noise-to-draw map, plus
            ``ml_weight`` times its own maximum-likelihood loss. ``None``: maximum likelihood alone.
        teacher_draws: teacher draws (noise vectors) per training simulation, computed once before training.
        teacher_steps: Euler steps of the teacher's ODE solve.
        pull_weight: weight of the teacher's pull on the student's draws
            (:func:`inference.posterior.cinn.distill.teacher_pull`; with a teacher; 0: none).
        pull_time: ``1 - t`` at which the teacher's field denoises the student's draws for the pull (its noise scale
            in standardized units).
        ml_weight: weight of the maximum-likelihood loss next to the distillation loss (with a teacher; 0:
            distillation alone).
        train: the training settings (:class:`zoo.training.TrainConfig`; defaults :data:`TRAIN`). ``restarts``
            trains that many networks on the same simulations (different initializations, permutations and batch
            orders) and keeps the one with the lowest marginal calibration error on the held-out simulations; with
            a ``checkpoint_dir`` each restart checkpoints into its own subfolder. The trained estimator is returned
            on the CPU whatever ``device`` it was trained on.
    """

    coupling: str = "affine"
    blocks: int = 10
    hidden: int | None = None
    layers: int = 2
    clamp: float = 2.0
    bins: int = 8
    actnorm: bool = False
    summary: str = "auto"
    summary_dim: int = 32
    summary_hidden: int = 64
    val_fraction: float = 0.05
    val_statistic: str = "median"
    restart_criterion: str = "parameters"
    online: bool = False
    teacher: str | None = None
    teacher_draws: int = 10
    teacher_steps: int = 32
    ml_weight: float = 0.1
    pull_weight: float = 1.0
    pull_time: float = 0.02
    train: TrainConfig = field(default=TRAIN)

    def __post_init__(self) -> None:
        _choice("coupling", self.coupling, COUPLINGS)
        _choice("summary", self.summary, ("auto", *SUMMARIES))
        _choice("val_statistic", self.val_statistic, VAL_STATISTICS)
        _choice("restart_criterion", self.restart_criterion, RESTART_CRITERIA)
        for name in (
            "blocks",
            "hidden",
            "layers",
            "bins",
            "summary_dim",
            "summary_hidden",
            "teacher_draws",
            "teacher_steps",
        ):
            value = getattr(self, name)
            if name == "hidden" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not (isinstance(self.clamp, int | float) and 0 < self.clamp < math.inf):
            raise ValueError(f"clamp must be a positive finite number, got {self.clamp!r}")
        if not (isinstance(self.val_fraction, int | float) and 0 < self.val_fraction < 1):
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction!r}")
        if self.teacher is not None and (not isinstance(self.teacher, str) or not self.teacher):
            raise ValueError(f"teacher must be an FMPE estimator directory or shipped name, got {self.teacher!r}")
        for name in ("ml_weight", "pull_weight"):
            w = getattr(self, name)
            if isinstance(w, bool) or not isinstance(w, int | float) or not 0 <= w < 1e6:
                raise ValueError(f"{name} must be a number in [0, 1e6), got {w!r}")
        t = self.pull_time
        if isinstance(t, bool) or not isinstance(t, int | float) or not 0 < t < 1:
            raise ValueError(f"pull_time must be a number in (0, 1), got {t!r}")
        for name in ("actnorm", "online"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def with_budget_defaults(options: CINNOptions, budget: int | None) -> CINNOptions:
    """``options`` with the budget-dependent defaults filled in (``hidden=None``: 48 below :data:`SMALL_BUDGET`
    simulations, else 32; online training counts as a large budget)."""
    if options.hidden is not None:
        return options
    small = budget is not None and not options.online and budget < SMALL_BUDGET
    return dataclasses.replace(options, hidden=48 if small else 32)
