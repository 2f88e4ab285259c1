"""Training FMPE: options, the conditional flow-matching fit, and the method's registration as ``"fmpe"``.

The loss is the conditional flow-matching loss on the Gaussian optimal-transport path (Lipman et al. 2023, eqs.
20-23; Dax et al. 2023, eq. 5): for a simulated pair (theta, x) with standardized ``u_1``, noise ``u_0 ~ N(0, I)`` and
``t ~ p(t)``,

    u_t = (1 - (1 - sigma_min) t) u_0 + t u_1,        L = E || v(u_t, t; phi(x)) - (u_1 - (1 - sigma_min) u_0) ||^2 / D

whose minimizer's flow carries N(0, I) at t = 0 to the posterior at t = 1 (to within sigma_min). The training loop is
zoo's one loop (:func:`zoo.training.train`); simulations come from the shared
:class:`~inference.posterior.simulations.SimulationStream`, whose generator also draws every t and u_0, so that a
resumed run sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

import simulators
from inference.methods import register_method
from inference.networks.init import reset_parameters
from inference.networks.summary import SUMMARIES
from inference.posterior.cinn.method import _reference_summaries, _training_record
from inference.posterior.fmpe.estimator import FMPEEstimator, load_fmpe
from inference.posterior.fmpe.network import SOLVERS, VectorFieldNet
from inference.posterior.misspecification import SummaryMahalanobis
from inference.posterior.simulations import training_split
from inference.posterior.support import SupportTransform
from simulators import Simulator
from simulators.devices import check_device
from zoo.training import TrainConfig, train

_PILOT = 20_000  # simulations for the standardization statistics in online training
TRAIN = TrainConfig(steps=20_000, batch_size=256, lr=1e-3, schedule="cosine", grad_clip=10.0, val_every=500)
"""FMPE's training defaults: Adam, cosine schedule to 1%, gradient norm clipped at 10, validation every 500 steps
(the weights with the lowest held-out flow-matching loss are kept)."""


@dataclass(frozen=True)
class FMPEOptions:
    """Options of flow-matching posterior estimation.

    Attributes:
        hidden: width of the vector field's residual MLP.
        blocks: residual blocks of the field.
        frequencies: Fourier frequencies of the time features.
        sigma_min: width of the probability path at t = 1 (standardized units).
        time_power: training times are drawn from p(t) proportional to t^time_power (0: uniform; larger values
            train more near the data end, Dax et al.'s alpha).
        summary: ``"auto"`` (``"deepset"`` for set-valued simulators, else ``"mlp"``), ``"deepset"``, ``"mlp"``,
            ``"conv1d"`` or ``"none"``.
        summary_dim: summary width.
        summary_hidden: hidden width of the summary network.
        solver: the ODE solver of sampling, one of :data:`~inference.posterior.fmpe.network.SOLVERS`.
        ode_steps: steps of the fixed-step solvers.
        rtol, atol: tolerances of ``dopri5`` (sampling and log_prob).
        val_fraction: share of the budget held out for validation and the misspecification score.
        online: draw fresh simulations for every batch (the budget then only sizes the validation set).
        train: the training settings (:class:`zoo.training.TrainConfig`; defaults :data:`TRAIN`; ``restarts`` must
            be 1). The estimator is returned on the CPU whatever ``device`` it was trained on.
    """

    hidden: int = 128
    blocks: int = 4
    frequencies: int = 8
    sigma_min: float = 1e-4
    time_power: float = 0.0
    summary: str = "auto"
    summary_dim: int = 32
    summary_hidden: int = 64
    solver: str = "dopri5"
    ode_steps: int = 16
    rtol: float = 1e-5
    atol: float = 1e-5
    val_fraction: float = 0.05
    online: bool = False
    train: TrainConfig = field(default=TRAIN)

    def __post_init__(self) -> None:
        for name, choices in (("summary", ("auto", *SUMMARIES)), ("solver", SOLVERS)):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {getattr(self, name)!r}")
        for name in ("hidden", "blocks", "frequencies", "summary_dim", "summary_hidden", "ode_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        for name, lo, hi in (("sigma_min", 0, 1), ("val_fraction", 0, 1), ("rtol", 0, 1), ("atol", 0, 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not lo < value < hi:
                raise ValueError(f"{name} must be a number in ({lo}, {hi}), got {value!r}")
        tp = self.time_power
        if isinstance(tp, bool) or not isinstance(tp, int | float) or not 0 <= tp < 1e3:
            raise ValueError(f"time_power must be a number in [0, 1000), got {tp!r}")
        if not isinstance(self.online, bool):
            raise ValueError(f"online must be true or false, got {self.online!r}")
        if self.train.restarts != 1:
            raise ValueError(f"fmpe trains one network: train.restarts must be 1, got {self.train.restarts}")


def build_model(simulator: Simulator, options: FMPEOptions) -> VectorFieldNet:
    """A fresh :class:`VectorFieldNet` for ``simulator`` with the architecture of ``options``."""
    set_valued = simulators.is_set_valued(simulator)
    summary = options.summary
    if summary == "auto":
        summary = "deepset" if set_valued else "mlp"
    support = SupportTransform.for_simulator(simulator)
    return VectorFieldNet(
        len(simulator.param_names),
        tuple(simulator.element_shape if set_valued else simulator.obs_shape),
        set_valued=set_valued,
        summary=summary,
        summary_dim=options.summary_dim,
        summary_hidden=options.summary_hidden,
        support=None if support.identity else support.config(),
        field={"hidden": options.hidden, "blocks": options.blocks, "frequencies": options.frequencies},
    )


def flow_matching_loss(
    model: VectorFieldNet, theta: torch.Tensor, x: torch.Tensor, t: torch.Tensor, u0: torch.Tensor, sigma_min: float
) -> torch.Tensor:
    """The conditional flow-matching loss per parameter dimension, averaged over the batch (module docstring)."""
    u1, _ = model.standardize(theta)
    tt = t.unsqueeze(-1)
    ut = (1 - (1 - sigma_min) * tt) * u0 + tt * u1
    target = u1 - (1 - sigma_min) * u0
    return (model.velocity(ut, t, model.summarize(x)) - target).square().mean()


def fit_fmpe(
    simulator: Simulator,
    *,
    budget: int | None,
    options: FMPEOptions,
    generator: torch.Generator | None = None,
    progress: bool = True,
    simulations: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> FMPEEstimator:
    """Train a flow-matching posterior estimator on ``budget`` simulations (or online).

    Arguments:
        simulator: the forward model; set-valued when it has ``n_obs``.
        budget: number of simulated (theta, x) pairs (a set counts as one); ``None`` trains online.
        options: :class:`FMPEOptions`.
        generator: source of all randomness (initialization, simulations, batches, times, noise).
        progress: show a progress bar.
        simulations: a fixed table ``(theta (N, D), x (N, *obs_shape))`` to train on instead of simulating; the last
            ``val_fraction`` of its rows are held out and ``budget`` is ignored (recorded as N).

    Returns:
        the trained :class:`FMPEEstimator`.
    """
    if simulations is not None:
        budget = len(simulations[0])
    o, tc = options, options.train
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    model = build_model(simulator, o)
    reset_parameters(model, gen)
    set_valued = model.set_valued
    lo, hi = simulator.n_obs if set_valued else (1, 1)
    online = (budget is None or o.online) and simulations is None
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
    model.set_standardization(*train_rows)
    device = check_device(tc.device)
    model.to(device)
    theta_val, x_val = theta_val.to(device), x_val.to(device)
    dim = model.dim
    # the held-out loss is scored at fixed times and noise (several per simulation), so validations compare
    t_val = _times(len(theta_val) * 4, o.time_power, gen).to(device)
    u0_val = torch.randn(len(theta_val) * 4, dim, generator=gen).to(device)
    x_rep = x_val.repeat(4, *([1] * (x_val.ndim - 1)))

    def with_noise(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        theta, x = batch
        t, u0 = _times(len(theta), o.time_power, stream.generator), torch.randn(theta.shape, generator=stream.generator)
        return tuple(v.to(device) for v in (theta, x, t, u0))

    stream.transform = with_noise

    def loss_fn(batch: tuple[torch.Tensor, ...], step: int) -> dict[str, torch.Tensor]:
        return {"loss": flow_matching_loss(model, *batch, o.sigma_min)}

    def val_loss() -> float:
        return float(flow_matching_loss(model, theta_val.repeat(4, 1), x_rep, t_val, u0_val, o.sigma_min))

    t0 = time.perf_counter()
    history = train(
        model,
        loss_fn,
        stream,
        config=tc,
        val_loss=val_loss,
        checkpoint_dir=tc.checkpoint_dir,
        progress=progress,
        rng=stream.generator,
        desc="fmpe",
    )
    score = SummaryMahalanobis.fit(_reference_summaries(model, x_val, (lo, hi), gen).cpu())
    model.cpu()
    info = _training_record(history, time.perf_counter() - t0, online, [], 0, "")
    return FMPEEstimator(model, simulator=simulator, options=o, budget=budget, score=score, info=info)


def _times(n: int, power: float, generator: torch.Generator | None) -> torch.Tensor:
    """n training times from p(t) proportional to t^power on [0, 1] (inverse CDF of a uniform draw)."""
    u = torch.rand(n, generator=generator)
    return u if power == 0 else u.pow(1.0 / (1.0 + power))


register_method("fmpe", fit_fmpe, load_fmpe, FMPEOptions)
