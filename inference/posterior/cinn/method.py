"""Training the conditional INN: the maximum-likelihood fit with restarts, and the method's registration.

The loss is the conditional maximum likelihood of :mod:`inference.posterior.cinn` (per parameter dimension), with a
teacher plus the distillation loss of :mod:`inference.posterior.cinn.distill`; the
training loop is zoo's one loop (:func:`zoo.training.train`) and the simulations come from the shared
:class:`~inference.posterior.simulations.SimulationStream`.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

import torch

import simulators
from inference.methods import register_method
from inference.networks.init import reset_parameters
from inference.posterior.cinn.distill import distillation_loss, load_teacher, teacher_pairs
from inference.posterior.cinn.estimator import CINNEstimator, load_cinn
from inference.posterior.cinn.network import ConditionalINN
from inference.posterior.cinn.options import CINNOptions, with_budget_defaults
from inference.posterior.misspecification import SummaryMahalanobis
from inference.posterior.simulations import training_split
from inference.posterior.support import SupportTransform
from simulators import Simulator
from simulators.devices import check_device
from simulators.sampling import chunk_generator
from zoo import distributed
from zoo.training import TrainConfig, TrainHistory, train

_PILOT = 20_000  # simulations for the standardization statistics in online training
_CALIBRATION_DRAWS = 200  # per held-out simulation, to compare restarts (5000 x 200: ~1 s)
_STATISTICS = {"median": torch.median, "mean": torch.mean}


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
    online = (budget is None or o.online) and simulations is None
    teacher = load_teacher(o.teacher, simulator) if o.teacher is not None else None  # refuse a bad one first
    if teacher is not None and online:
        raise ValueError("teacher: distillation trains on a fixed budget of simulations; give a budget, not online")
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    model = _fresh_model(simulator, o, gen)
    set_valued = model.set_valued
    lo, hi = simulator.n_obs if set_valued else (1, 1)
    stream, train_rows, (theta_val, x_val) = training_split(
        simulator,
        budget=budget,
        online=online,
        simulations=simulations,
        val_fraction=o.val_fraction,
        batch_size=tc.batch_size,
        generator=gen,
        pilot=_PILOT,
    )
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
    if teacher is not None:  # the teacher's draws for the training and held-out observations, once
        pairs = teacher_pairs(teacher, model, train_rows[1], o.teacher_draws, o.teacher_steps, gen, progress)
        val_pairs = teacher_pairs(teacher, model, x_val.cpu(), 1, o.teacher_steps, gen, False)
        val_pairs = (x_val, val_pairs.z.to(device), val_pairs.u.to(device))

        def with_pairs(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
            j = torch.randint(0, len(pairs.index), (len(batch[0]),), generator=stream.generator)
            extra = (train_rows[1][pairs.index[j]], pairs.z[j], pairs.u[j])
            return tuple(t.to(device) for t in (*batch, *extra))

        stream.transform = with_pairs

    holder = [model]  # the network being trained (restarts replace it)
    pulling = teacher if teacher is not None and o.pull_weight > 0 else None

    def _distillation(student: ConditionalINN, *batch: torch.Tensor) -> dict[str, torch.Tensor]:
        return distillation_loss(student, *batch, teacher=pulling, pull_time=o.pull_time)

    def _mix(parts: dict[str, torch.Tensor]) -> torch.Tensor:
        return parts["distill"] + o.pull_weight * parts.get("pull", 0.0)

    def loss_fn(batch: tuple[torch.Tensor, ...], step: int) -> dict[str, torch.Tensor]:
        theta, x, *distill = batch
        nll = -holder[0].log_prob(theta, x).mean() / holder[0].dim
        if not distill:
            return {"loss": nll}
        parts = _distillation(holder[0], *distill)
        return {"loss": _mix(parts) + o.ml_weight * nll, **parts, "nll": nll}

    def val_loss() -> float:
        # By default the median, not the mean, of the held-out negative log-likelihood: for near-degenerate
        # posteriors (the noise-free arm's lie on 2-D manifolds in 4-D) the mean is dominated by a handful of held-out
        # points just off the learned manifold, and stops improving long before typical points (and the
        # re-simulation error) do.
        stat = _STATISTICS[o.val_statistic]
        if teacher is not None:  # the training loss's mix, held out
            nll = float(stat(-holder[0].log_prob(theta_val, x_val)) / holder[0].dim)
            return float(_mix(_distillation(holder[0], *val_pairs))) + o.ml_weight * nll
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
