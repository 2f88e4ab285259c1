"""Training the conditional INN: options, the maximum-likelihood fit with restarts, and the method's registration.

The loss is the conditional maximum likelihood of :mod:`inference.posterior.cinn` (per parameter dimension); the
training loop is zoo's one loop (:func:`zoo.training.train`) and the simulations come from the shared
:class:`~inference.posterior.simulations.SimulationStream`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any

import torch

import simulators
from inference.methods import register_method
from inference.networks.init import reset_parameters
from inference.networks.summary import SUMMARIES
from inference.posterior.cinn.estimator import CINNEstimator, load_cinn
from inference.posterior.cinn.network import ConditionalINN
from inference.posterior.misspecification import SummaryMahalanobis
from inference.posterior.simulations import SimulationStream, holdout
from inference.posterior.support import SupportTransform
from simulators import Simulator
from simulators.devices import check_device
from simulators.sampling import chunk_generator
from zoo import distributed
from zoo.training import TrainConfig, TrainHistory, train

SMALL_BUDGET = 50_000
"""Budgets below this get wider coupling subnetworks by default (``hidden`` 48 rather than 32): at 1e4 simulations
on the arm, 10 x 32 networks are too wide (calibration 0.40-1.34% alone, 1.49% as the best of 3 restarts) and
10 x 48 ones are not (0.32-0.68%, 0.45%); at 1e5 the 10 x 32 recipe of ``arm-cinn`` is calibrated (0.57%)."""
_PILOT = 20_000  # simulations for the standardization statistics in online training
_CALIBRATION_DRAWS = 200  # per held-out simulation, to compare restarts (5000 x 200: ~1 s)
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
    train: TrainConfig = field(default=TRAIN)

    def __post_init__(self) -> None:
        _choice("coupling", self.coupling, COUPLINGS)
        _choice("summary", self.summary, ("auto", *SUMMARIES))
        _choice("val_statistic", self.val_statistic, VAL_STATISTICS)
        _choice("restart_criterion", self.restart_criterion, RESTART_CRITERIA)
        for name in ("blocks", "hidden", "layers", "bins", "summary_dim", "summary_hidden"):
            value = getattr(self, name)
            if name == "hidden" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not (isinstance(self.clamp, int | float) and 0 < self.clamp < math.inf):
            raise ValueError(f"clamp must be a positive finite number, got {self.clamp!r}")
        if not (isinstance(self.val_fraction, int | float) and 0 < self.val_fraction < 1):
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction!r}")
        for name in ("actnorm", "online"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")


_STATISTICS = {"median": torch.median, "mean": torch.mean}


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def architecture(options: CINNOptions, simulator: Simulator) -> dict[str, Any]:
    """The :class:`ConditionalINN` keyword arguments implied by ``options`` for ``simulator``."""
    summary = options.summary
    if summary == "auto":
        summary = "deepset" if simulators.is_set_valued(simulator) else "mlp"
    keys = ("coupling", "blocks", "hidden", "layers", "clamp", "bins", "actnorm")
    arch = {
        "summary": summary,
        "summary_dim": options.summary_dim,
        "summary_hidden": options.summary_hidden,
        "flow": {k: getattr(options, k) for k in keys},
    }
    support = SupportTransform.for_simulator(simulator)
    if not support.identity:  # a constrained prior: train on u = t^{-1}(theta), draw theta = t(u)
        arch["support"] = support.config()
    return arch


def with_budget_defaults(options: CINNOptions, budget: int | None) -> CINNOptions:
    """``options`` with the budget-dependent defaults filled in (``hidden=None``: 48 below :data:`SMALL_BUDGET`
    simulations, else 32; online training counts as a large budget)."""
    if options.hidden is not None:
        return options
    small = budget is not None and not options.online and budget < SMALL_BUDGET
    return dataclasses.replace(options, hidden=48 if small else 32)


def build_model(simulator: Simulator, options: CINNOptions, *, seed: int = 0) -> ConditionalINN:
    """A fresh :class:`ConditionalINN` for ``simulator`` with the architecture of ``options``."""
    set_valued = simulators.is_set_valued(simulator)
    element_shape = tuple(simulator.element_shape if set_valued else simulator.obs_shape)
    arch = architecture(options, simulator)
    return ConditionalINN(len(simulator.param_names), element_shape, set_valued=set_valued, seed=seed, **arch)


def fit_cinn(
    simulator: Simulator,
    *,
    budget: int | None,
    options: CINNOptions,
    generator: torch.Generator | None = None,
    progress: bool = True,
    simulations: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> CINNEstimator:
    """Train a conditional INN on ``budget`` simulations (or online) by maximum likelihood.

    Arguments:
        simulator: the forward model; set-valued when it has ``n_obs``.
        budget: number of simulated (theta, x) pairs (a set counts as one); ``None`` trains online.
        options: :class:`CINNOptions`.
        generator: source of all randomness (initialization, simulations, batches).
        progress: show a progress bar.
        simulations: a fixed table ``(theta (N, D), x (N, *obs_shape))`` to train on instead of simulating (e.g. the
            same simulations given to a peer method); the last ``val_fraction`` of its rows are held out and
            ``budget`` is ignored (recorded as N).

    Returns:
        the trained :class:`CINNEstimator`.
    """
    if simulations is not None:
        budget = len(simulations[0])
    options = with_budget_defaults(options, budget)
    o, tc = options, options.train
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    model = _fresh_model(simulator, o, gen)
    set_valued = model.set_valued
    lo, hi = simulator.n_obs if set_valued else (1, 1)
    online = (budget is None or o.online) and simulations is None
    stream = SimulationStream.from_simulator(
        simulator, generator=gen, batch_size=tc.batch_size, set_sizes=(lo, hi) if set_valued else None
    )
    n_val = max(256, int(o.val_fraction * budget)) if budget is not None else 4096
    if budget is not None and not online and budget - n_val < tc.batch_size:
        raise ValueError(f"budget {budget} is too small: need at least batch_size + {n_val} validation simulations")
    if simulations is not None:
        train_rows, (theta_val, x_val) = holdout([t.to(simulations[0].dtype) for t in simulations], n_val)
    else:
        theta_val, x_val = stream.draw(n_val)
        train_rows = stream.draw(_PILOT if online else budget - n_val)
    if not online:
        stream.table = train_rows
    parallel_restarts = distributed.active() and tc.restarts > 1  # one restart per rank, each trained alone
    if distributed.active() and not parallel_restarts:  # data parallel: own batches, together the usual batch size
        stream.generator = distributed.rank_generator(gen)
        stream.batch_size = max(1, tc.batch_size // distributed.size())
    model.set_standardization(*train_rows)
    device = check_device(tc.device)
    model.to(device)
    theta_val, x_val = theta_val.to(device), x_val.to(device)
    stream.transform = lambda batch: tuple(t.to(device) for t in batch)
    val_ks = sorted({lo, (lo + hi) // 2, hi})

    holder = [model]  # the network being trained (restarts replace it)

    def loss_fn(batch: tuple[torch.Tensor, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        theta, x = batch
        return {"loss": -holder[0].log_prob(theta, x).mean() / holder[0].dim}

    def val_loss() -> float:
        # By default the median, not the mean, of the held-out negative log-likelihood: for near-degenerate
        # posteriors (the noise-free arm's lie on 2-D manifolds in 4-D) the mean is dominated by a handful of held-out
        # points just off the learned manifold, and stops improving long before typical points (and the
        # re-simulation error) do.
        stat = _STATISTICS[o.val_statistic]
        if not set_valued:
            return float(stat(-holder[0].log_prob(theta_val, x_val)) / holder[0].dim)
        nll = [float(stat(-holder[0].log_prob(theta_val, x_val[:, :k]))) for k in val_ks]
        return sum(nll) / (len(val_ks) * holder[0].dim)

    t0 = time.perf_counter()
    restart_errors: list[float] = []  # held-out calibration error of each restart (restarts > 1)
    cal_seed = int(torch.randint(0, 2**31 - 1, (), generator=gen)) if tc.restarts > 1 else 0
    kept: tuple[ConditionalINN, TrainHistory] | None = None  # the best restart so far
    if parallel_restarts:
        return _parallel_restarts(locals())
    for r in range(tc.restarts):
        if r:  # a fresh network: new initialization, permutations and batch order; same simulations
            model = _fresh_model(simulator, o, gen)
            model.set_standardization(*train_rows)
            model.to(device)
            holder[0] = model
        history = train(
            model,
            loss_fn,
            stream,
            config=tc,
            val_loss=val_loss,
            checkpoint_dir=_checkpoints(tc, r),
            progress=progress,
            rng=stream.generator,
            desc="cinn" if tc.restarts == 1 else f"cinn {r + 1}/{tc.restarts}",
        )
        if tc.restarts > 1:
            error = _held_out_calibration(model, theta_val, x_val, hi, cal_seed, o.restart_criterion)
            if error < min(restart_errors, default=math.inf):
                kept = (model, history)
            restart_errors.append(error)
    if kept is not None:
        model, history = kept
    score = SummaryMahalanobis.fit(_reference_summaries(model, x_val, (lo, hi), gen).cpu())
    model.cpu()
    info = _training_record(history, time.perf_counter() - t0, online, restart_errors, cal_seed, o.restart_criterion)
    return CINNEstimator(model, simulator=simulator, options=o, budget=budget, score=score, info=info)


def _parallel_restarts(v: dict[str, Any]) -> CINNEstimator:
    """``zoo train --nproc N`` with restarts: rank k trains restarts k, k + N, ... alone (its own initialization and
    batches, from the generator of (one shared draw, restart)), the held-out errors are gathered, and every rank takes
    the best restart's weights from the rank that trained it; rank 0 then writes the estimator."""
    o, tc, gen, sim = v["o"], v["tc"], v["gen"], v["simulator"]
    base = int(torch.randint(0, 2**31 - 1, (), generator=gen))
    mine: list[tuple[float, int]] = []
    kept: tuple[ConditionalINN, TrainHistory] | None = None
    for r in range(distributed.group_rank(), tc.restarts, distributed.size()):
        g = chunk_generator(base, r)
        model = v["model"]
        if r:  # a fresh network of this restart's own draws
            model = _fresh_model(sim, o, g)
            model.set_standardization(*v["train_rows"])
            model.to(v["device"])
        v["stream"].generator = g
        v["holder"][0] = model
        with distributed.alone():
            history = train(
                model,
                v["loss_fn"],
                v["stream"],
                config=tc,
                val_loss=v["val_loss"],
                checkpoint_dir=_checkpoints(tc, r),
                progress=v["progress"],
                rng=g,
                desc=f"cinn {r + 1}/{tc.restarts} (rank {distributed.group_rank()})",
            )
        error = _held_out_calibration(model, v["theta_val"], v["x_val"], v["hi"], v["cal_seed"], o.restart_criterion)
        mine.append((error, r))
        if error <= min(e for e, _ in mine):
            kept = (model, history)
    errors = sorted(pair for ranked in distributed.gather(mine) for pair in ranked)
    best = errors[0][1]
    model = v["model"] if kept is None else kept[0]
    history = distributed.share(model, None if kept is None else kept[1], src=best % distributed.size())
    v["holder"][0] = model
    by_restart = [e for e, _ in sorted(errors, key=lambda pair: pair[1])]
    score = SummaryMahalanobis.fit(_reference_summaries(model, v["x_val"], (v["lo"], v["hi"]), gen).cpu())
    model.cpu()
    seconds = time.perf_counter() - v["t0"]
    info = _training_record(history, seconds, v["online"], by_restart, v["cal_seed"], o.restart_criterion)
    return CINNEstimator(model, simulator=sim, options=o, budget=v["budget"], score=score, info=info)


def _fresh_model(simulator: Simulator, options: CINNOptions, generator: torch.Generator) -> ConditionalINN:
    """A new network: permutations from one draw of ``generator``, weights from the next draws."""
    model = build_model(simulator, options, seed=int(torch.randint(0, 2**31 - 1, (), generator=generator)))
    reset_parameters(model, generator)
    return model


def _checkpoints(tc: TrainConfig, restart: int) -> str | None:
    if tc.checkpoint_dir is None or tc.restarts == 1:
        return tc.checkpoint_dir
    return os.path.join(tc.checkpoint_dir, f"restart{restart}")


@torch.no_grad()
def _reference_summaries(
    model: ConditionalINN, x_val: torch.Tensor, set_sizes: tuple[int, int], generator: torch.Generator
) -> torch.Tensor:
    """Summaries of the held-out simulations, the reference of the misspecification score (sets: random sizes)."""
    if not model.set_valued:
        return model.summarize(x_val)
    lo, hi = set_sizes
    ks = torch.randint(lo, hi + 1, (len(x_val),), generator=generator).to(x_val.device)
    return torch.cat([model.summarize(x_val[ks == k, :k]) for k in range(lo, hi + 1) if (ks == k).any()])


def _training_record(
    history: TrainHistory, seconds: float, online: bool, restart_errors: list[float], cal_seed: int, criterion: str
) -> dict[str, Any]:
    info = {
        "steps": history.steps[-1] if history.steps else 0,
        "seconds": round(seconds, 1),
        "best_val_loss": history.best_val if math.isfinite(history.best_val) else None,
        "best_step": history.best_step,
        "stopped_early": history.stopped_early,
        "online": online,
    }
    if restart_errors:
        info["restart_calibration_errors"] = [round(c, 5) for c in restart_errors]
        info["restart_kept"] = restart_errors.index(min(restart_errors))
        info["restart_calibration_seed"] = cal_seed
        info["restart_criterion"] = criterion
    return info


@torch.no_grad()
def _held_out_calibration(
    model: ConditionalINN, theta: torch.Tensor, x: torch.Tensor, set_size: int, seed: int, criterion: str
) -> float:
    """Marginal calibration error (thesis sec. 4.2) of ``model`` on held-out simulations, 200 draws each.

    ``criterion`` ``"parameters"``: the mean of the per-parameter errors; ``"pooled"``: the pooled error. Sets are
    scored at their largest size. The latent draws come from ``seed``, so that restarts are compared on the same draws.
    """
    from inference.evaluation.diagnostics import calibration_error

    if model.set_valued:
        x = x[:, :set_size]
    h = model.summarize(x)
    draws = model.sample_given(_CALIBRATION_DRAWS, h, generator=torch.Generator(h.device).manual_seed(seed))
    calibration = calibration_error(draws.cpu(), theta.cpu())
    return float(calibration.error if criterion == "pooled" else calibration.error_per_parameter.mean())


register_method("cinn", fit_cinn, load_cinn, CINNOptions)
