"""Training the inverse INN: options, the estimator, fitting and the method's registration as ``"inn"``."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import simulators
from inference.estimator_dir import EstimatorFiles, save_estimator
from inference.methods import register_method
from inference.networks.init import reset_parameters
from inference.posterior.inn.loss import INNLoss, inn_loss, ramp, x_weight_sigma_at
from inference.posterior.inn.network import InverseINN, check_labels, upgrade_legacy
from inference.posterior.simulations import SimulationStream
from inference.posterior.support import SupportTransform
from simulators import Simulator
from simulators.devices import check_device
from zoo import distributed
from zoo.bounds import build_checked, check_sizes
from zoo.training import TrainConfig, train

_PILOT = 20_000  # simulations for the standardization statistics
TRAIN = TrainConfig(
    steps=12_000,
    batch_size=500,
    lr=1e-3,
    betas=(0.9, 0.95),
    weight_decay=1e-5,
    schedule="cosine",
    grad_clip=10.0,
    skip_nonfinite=10,
    val_every=500,
)
"""The inverse INN's training defaults (released configuration; see :class:`INNOptions`)."""


@dataclass(frozen=True)
class INNOptions:
    """Options of the inverse INN: the network, the loss (:class:`INNLoss`) and the training (:data:`TRAIN`).

    Defaults follow the released configuration of Ardizzone et al. 2019 (``inverse_problems_science``), which the
    issue calls the reference configuration: Adam lr 1e-3, betas (0.9, 0.95), weight decay 1e-5, batch 500, 4 coupling
    blocks of width 128, 60 epochs x 200 iterations = 12 000 steps, and the loss settings of :class:`INNLoss`.
    Departures: the clamp is 2 (thesis ch. 2 and FrEIA's default; the release's 4 let the log-scales of every block
    saturate and the loss explode in our runs), subnetworks have 3 linear layers (thesis app. B.5), the learning rate
    decays by a cosine to 1% (the release decays exponentially to 2%), the global gradient norm is clipped at 10 (the
    release clamps each entry to +-15), and up to 10 non-finite steps in a row are skipped (``train.skip_nonfinite``)
    so that one extreme batch does not end a run. Per-simulator settings are in ``benchmarks/inn.py``.

    Attributes:
        dim_z: latent width K; ``None``: ``D - M`` when positive (the observation assumed to have full intrinsic
            dimension), else ``D`` (an observation wider than the parameters is treated as a label carrying no
            continuous information, as the one-hot Gaussian-mixture labels; thesis table B.2).
        dim_total: nominal network width; ``None``: ``max(D, M + K)``, the least padding. Must be >= both.
        blocks: affine coupling blocks.
        hidden: subnetwork width.
        layers: hidden layers per subnetwork.
        clamp: soft clamp of the log-scales.
        activation: subnetwork activation.
        standardize: standardize parameters and observations with pilot statistics.
        val_size: validation simulations (in addition to the budget).
        loss: the objective's settings (:class:`INNLoss`).
        train: the training settings (:class:`zoo.training.TrainConfig`; defaults :data:`TRAIN`; ``restarts`` must be
            1).
    """

    dim_z: int | None = None
    dim_total: int | None = None
    blocks: int = 4
    hidden: int = 128
    layers: int = 2
    clamp: float = 2.0
    activation: str = "relu"
    standardize: bool = True
    val_size: int = 2000
    loss: INNLoss = field(default=INNLoss())
    train: TrainConfig = field(default=TRAIN)

    def __post_init__(self) -> None:
        for name in ("blocks", "hidden", "layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("dim_z", "dim_total"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be an integer >= 1 or none (automatic), got {value!r}")
        if not (isinstance(self.clamp, int | float) and 0 < self.clamp < math.inf):
            raise ValueError(f"clamp must be a positive finite number, got {self.clamp!r}")
        if isinstance(self.val_size, bool) or not isinstance(self.val_size, int) or self.val_size < 0:
            raise ValueError(f"val_size must be an integer >= 0, got {self.val_size!r}")
        if self.train.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 for the MMD terms, got {self.train.batch_size}")
        if self.train.restarts != 1:
            raise ValueError(f"the inverse INN trains one network; restarts must be 1, got {self.train.restarts}")


class INNPosterior:
    """``q(theta | x_o)`` of an inverse INN for a batch of observations; sampling only (no density).

    Arguments:
        model: the trained network.
        x_o: observations, shape (*batch, *obs_shape).
        simulator: the simulator whose observations ``x_o`` are.
    """

    has_log_prob = False

    def __init__(self, model: InverseINN, x_o: torch.Tensor, simulator: Simulator) -> None:
        x_o, obs_shape = simulators.validate_observation(simulator, x_o)
        self.model, self.x_o = model, x_o
        self.batch_shape = x_o.shape[: x_o.ndim - len(obs_shape)]
        self._x = x_o.reshape(*self.batch_shape, model.dim_x)
        if model.labels:
            check_labels(self._x)

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws per observation, shape (n, *batch, D), on ``x_o``'s device and dtype."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer number of draws, got {n!r}")
        p = next(self.model.parameters())
        x = self._x.to(device=p.device, dtype=p.dtype)
        return self.model.sample(x, n, generator=generator).to(device=self.x_o.device, dtype=self.x_o.dtype)

    def log_prob(self, theta: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("the inverse INN has no tractable posterior density; use sample()")


class INNEstimator:
    """A fitted inverse INN: ``posterior(x_o)``, ``save(dir)``; rebuilt by ``inference.load(dir)``.

    Arguments:
        simulator: the simulator it was trained for.
        model: the trained network.
        options: the options it was trained with.
        budget: the simulation budget (``None``: fresh simulations every step).
        history: the training history, if known.
    """

    method = "inn"

    def __init__(
        self,
        simulator: Simulator,
        model: InverseINN,
        options: INNOptions,
        budget: int | None,
        history: dict[str, Any] | None = None,
    ) -> None:
        self.simulator, self.model, self.options, self.budget = simulator, model, options, budget
        self.history = history or {}

    def posterior(self, x_o: torch.Tensor) -> INNPosterior:
        """The posterior for observations ``x_o`` of shape (*batch, *obs_shape)."""
        return INNPosterior(self.model, x_o, self.simulator)

    def save(self, directory: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write ``estimator.json`` (options, network config, training summary) and ``weights.safetensors``."""
        summary = {
            k: self.history[k] for k in ("seconds", "best_val", "best_step", "stopped_early") if k in self.history
        }
        if "train" in self.history and self.history["train"]:
            summary["final_terms"] = self.history["train"][-1]
        return save_estimator(
            directory,
            self,
            config={"network": self.model.config(), "training": summary},
            tensors=self.model.state_dict(),
            overwrite=overwrite,
        )


def load_inn(files: EstimatorFiles) -> INNEstimator:
    """Rebuild an :class:`INNEstimator` from a saved directory (see :func:`inference.load`)."""
    try:
        config, tensors = upgrade_legacy(dict(files.config["network"]), files.tensors)
        shapes = {k: tuple(v.shape) for k, v in tensors.items()}
        check_sizes(config, shapes, str(files.directory / "estimator.json"))  # bounded loading (zoo.bounds)
        model = build_checked(lambda: InverseINN(**config), shapes, str(files.directory))
        model.load_state_dict(tensors)
    except (KeyError, TypeError, RuntimeError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"{files.directory} does not hold a valid inverse INN ({msg})") from None
    model.eval()
    return INNEstimator(files.simulator, model, files.options, files.budget, files.config.get("training"))


def _dims(simulator: Simulator, options: INNOptions) -> tuple[int, int, int, int]:
    d = len(simulator.param_names)
    m = math.prod(simulator.obs_shape)
    k = options.dim_z if options.dim_z is not None else (d - m if d > m else d)
    total = options.dim_total if options.dim_total is not None else max(d, m + k, 2)
    if k < 0 or total < max(d, m + k, 2):
        raise ValueError(
            f"dim_z={k} and dim_total={total} do not fit parameters of width {d} and observations of width {m}: "
            f"need dim_z >= 0 and dim_total >= {max(d, m + k, 2)}"
        )
    return d, m, k, total


def fit_inn(
    simulator: Simulator,
    *,
    budget: int | None = None,
    options: INNOptions | None = None,
    generator: torch.Generator | None = None,
    progress: bool = True,
    simulations: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> INNEstimator:
    """Train an inverse INN on simulations (registered as ``inference.fit(..., method="inn")``).

    Arguments:
        simulator: the forward model.
        budget: training simulations. ``None`` or ``>= steps * batch_size``: fresh simulations every step (at most
            ``steps * batch_size`` are used); smaller: a fixed table of ``budget`` simulations, batches drawn from it.
            ``val_size`` validation simulations come on top.
        options: :class:`INNOptions` (``None``: defaults).
        generator: source of all randomness (weights, permutations, simulations, noise).
        progress: show a progress bar with the loss terms.
        simulations: a fixed table ``(theta (N, D), x (N, *obs_shape))`` to train on instead of simulating; its
            last ``val_size`` rows are held out for validation and ``budget`` is recorded as N.

    Returns:
        the trained :class:`INNEstimator`.

    Raises:
        zoo.training.TrainingDiverged: the loss became non-finite (last good weights kept, and checkpointed with
            ``train.checkpoint_dir``).
    """
    o = options or INNOptions()
    lo, tc = o.loss, o.train
    d, m, k, total = _dims(simulator, o)
    device = check_device(tc.device)

    def seed() -> int:
        return int(torch.randint(0, 2**62, (1,), generator=generator))

    arch = {"blocks": o.blocks, "hidden": o.hidden, "layers": o.layers, "clamp": o.clamp, "activation": o.activation}
    labels = lo.y_loss == "cross_entropy"
    support = SupportTransform.for_simulator(simulator)
    arch["support"] = None if support.identity else support.config()
    model = InverseINN(d, m, k, total, **arch, seed=seed() % 2**31, labels=labels, label_smoothing=lo.label_smoothing)
    reset_parameters(model.flow, generator)
    stream = SimulationStream.from_simulator(simulator, generator=generator, batch_size=tc.batch_size)
    table = None
    if simulations is not None:  # the user's table: validation rows from its end, the rest for training
        if lo.weight_resim > 0:
            raise ValueError(
                "weight_resim > 0 simulates posterior draws in training; it needs a simulator, not a table"
            )
        budget = len(simulations[0])
        n_val = o.val_size if tc.val_every and o.val_size >= 2 else 0
        if budget - n_val < tc.batch_size:
            raise ValueError(f"a table of {budget} rows is too small: need batch_size + {n_val} validation rows")
        table = tuple(t[: budget - n_val] for t in simulations)
        stream.draw_fn = lambda n, g: tuple(t[-n_val:] for t in simulations)  # the validation rows
    if labels:
        check_labels((table or stream.draw(100))[1][:100].reshape(-1, m), "simulated observation")
    if o.standardize:
        theta, x = (t[:_PILOT] for t in table) if table is not None else stream.draw(_PILOT)
        model.set_standardization(theta, x.reshape(len(x), -1))
    model.to(device=device, dtype=torch.float32)
    noise_gen = torch.Generator(device=device).manual_seed(seed())

    def prepare(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        theta, x = batch
        return model.standardize(theta.to(device, torch.float32), x.reshape(len(x), -1).to(device, torch.float32))

    if table is not None:
        stream.table = prepare(table)
    elif budget is not None and budget < tc.steps * tc.batch_size:
        if budget < tc.batch_size:
            raise ValueError(f"budget ({budget}) must be at least one batch (batch_size={tc.batch_size})")
        if lo.weight_resim > 0:
            raise ValueError(
                f"weight_resim > 0 simulates every posterior draw in training, beyond a fixed table of {budget} "
                "simulations; set weight_resim=0 or train on fresh simulations (no budget)"
            )
        stream.table = prepare(stream.draw(budget))
    else:
        stream.transform = prepare

    def resimulate(ts: torch.Tensor) -> torch.Tensor:
        theta = model.unstandardize(ts)
        x = simulator.simulate(theta.to(dtype=torch.float32).cpu(), generator=generator).reshape(len(ts), -1)
        return model.standardize(None, x.to(device, torch.float32))[1]

    def loss_fn(batch: tuple[torch.Tensor, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        factor = ramp(step, tc.steps) if lo.x_ramp else 1.0
        sigma = x_weight_sigma_at(step, tc.steps, lo)
        resim = resimulate if lo.weight_resim > 0 else None
        return inn_loss(model, *batch, lo, x_factor=factor, x_weight_sigma=sigma, resimulate=resim, generator=noise_gen)

    val_loss = None
    if tc.val_every and o.val_size >= 2:
        val = prepare(stream.draw(o.val_size))
        val_seed = seed()

        def val_loss() -> float:  # same noise and weights every time (the final ones), so that validations compare
            g = torch.Generator(device=device).manual_seed(val_seed)
            sigma = x_weight_sigma_at(tc.steps, tc.steps, lo)
            return float(inn_loss(model, *val, lo, x_weight_sigma=sigma, generator=g)["loss"])

    if distributed.active():  # data parallel: each rank its own batches, together the one-process batch size
        stream.generator = distributed.rank_generator(generator)
        stream.batch_size = max(2, tc.batch_size // distributed.size())
    history = train(model, loss_fn, stream, config=tc, val_loss=val_loss, progress=progress, desc="inn")
    return INNEstimator(simulator, model, o, budget, history.to_json())


register_method("inn", fit_inn, load_inn, INNOptions)
