"""Conditional INN trained by maximum likelihood, with a summary network (thesis ch. 3; BayesFlow).

An invertible map ``z = f(theta; h)`` conditioned on a learned summary ``h = phi(x)`` of the observation turns the
posterior into a standard normal: ``q(theta | x) = N(f(theta; h); 0, I) |det df/dtheta|``. Flow and summary are
trained jointly on simulated pairs (theta_i, x_i) by the conditional maximum-likelihood loss (thesis eq. 3.4)::

    L_cML = E_i [ ||f(theta_i; phi(x_i))||^2 / 2  -  log|det J_f(theta_i; phi(x_i))| ]

whose minimum over flows is the true posterior (thesis Prop. 1). Posterior draws are ``theta = f^{-1}(z; h)`` with
``z ~ N(0, I)``: one inverse pass, batched over draws and observations at once. The summary ``h`` is computed once
per observation and broadcast over its draws.

theta and x are standardized internally (means and standard deviations of the training simulations, stored with
the weights; for sets, per element). For set-valued simulators (``simulator.n_obs = (lo, hi)``) each training
batch draws one set size K uniformly from ``[lo, hi]``, so one model serves every K in the range (BayesFlow's
variable-N training), and the default summary is the permutation-invariant
:class:`~inference.posterior.summary.DeepSet`.

Blocks: the affine coupling blocks of :mod:`inference.posterior.coupling` (soft-clamped, condition concatenated to each
subnetwork input) or normflows' conditional rational-quadratic spline coupling (``coupling="spline"``), each
followed by a fixed random permutation, optionally preceded by an ActNorm.

References:
    Ardizzone, PhD thesis, ch. 3 (cINN) and sec. 3.8.6; Ardizzone et al., *Guided image generation with conditional
    invertible neural networks*, 2019; Radev et al., *BayesFlow*, IEEE TNNLS 2020; Durkan et al., *Neural spline
    flows*, NeurIPS 2019.
"""

from __future__ import annotations

import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

import simulators
from inference.api import EstimatorFiles, register_method, save_estimator
from inference.posterior.conditional_flow import build_flow
from inference.posterior.misspecification import Misspecification, SummaryMahalanobis
from inference.posterior.summary import build_summary
from simulators import Simulator
from zoo.training import TrainConfig, train

_PILOT = 20_000  # simulations for the standardization statistics in online training
_CALIBRATION_DRAWS = 200  # per held-out simulation, to compare restarts (5000 x 200: ~1 s)
# draws x observations per inverse pass (arm-cinn, 12 x 32): on one thread 2^15 (4.8e5 / 5.8e5 / 6.4e5 draws/s at
# 2^13 / 2^14 / 2^15; its activations take 4 MB); with a pass per Python thread 2^14 (2 threads: 7.8e5 / 9.4e5-1.03e6 /
# 8.5e5-8.8e5 at 2^13 / 2^14 / 2^15: two passes share the cache)
_CHUNK = 1 << 15
_CHUNK_THREADED = 1 << 14


@dataclass(frozen=True)
class CINNOptions:
    """Options of the conditional INN.

    Attributes:
        coupling: ``"affine"`` (soft-clamped affine coupling) or ``"spline"`` (rational-quadratic spline coupling).
        blocks: coupling blocks.
        hidden: hidden width of the coupling subnetworks.
        layers: hidden layers per subnetwork.
        clamp: soft clamp of the affine log-scales (thesis eq. 3.13).
        bins: spline bins (``coupling="spline"``).
        actnorm: an ActNorm (learned per-dimension scale and shift) before every block.
        summary: ``"auto"`` (``"deepset"`` for set-valued simulators, else ``"mlp"``), ``"deepset"``, ``"mlp"``,
            ``"conv1d"`` or ``"none"``.
        summary_dim: summary width (the condition width of the flow).
        summary_hidden: hidden width of the summary network.
        batch_size: simulations per optimizer step.
        steps: optimizer steps.
        lr: Adam learning rate (cosine schedule to 1%).
        val_fraction: share of the budget held out for validation, early stopping and the misspecification score.
        val_every: validate every this many steps (0: no validation; the last weights are kept).
        val_statistic: ``"median"`` or ``"mean"`` of the held-out negative log-likelihood, the criterion that picks
            the kept weights (the median is robust to the few held-out points that a near-degenerate posterior misses).
        patience: early stop after this many validations without improvement (0: never).
        online: draw fresh simulations for every batch (the budget then only sizes the validation set);
            with no budget, training is always online.
        restarts: train this many networks on the same simulations (different initializations, permutations and
            batch orders) and keep the one with the lowest marginal calibration error on the held-out validation
            simulations (``val_fraction`` of the budget). Training takes ``restarts`` times as long; sampling is
            unchanged.
        checkpoint_dir: where ``zoo.training.train`` writes checkpoints (``None``: none; one subfolder per restart).
        resume: continue from the checkpoint in ``checkpoint_dir``.
        device: where to train (``"cpu"``, ``"cuda"``, ...); simulations stay on the CPU and each batch is moved
            there. The trained estimator is returned on the CPU either way.
    """

    coupling: str = "affine"
    blocks: int = 6
    hidden: int = 128
    layers: int = 2
    clamp: float = 2.0
    bins: int = 8
    actnorm: bool = False
    summary: str = "auto"
    summary_dim: int = 32
    summary_hidden: int = 64
    batch_size: int = 512
    steps: int = 10_000
    lr: float = 1e-3
    val_fraction: float = 0.05
    val_every: int = 500
    val_statistic: str = "median"
    patience: int = 0
    online: bool = False
    restarts: int = 1
    checkpoint_dir: str | None = None
    resume: bool = False
    device: str = "cpu"


class ConditionalINN(nn.Module):
    """Summary network + conditional coupling flow, with theta / x standardization stored as buffers.

    Arguments:
        dim: parameter dimension D.
        element_shape: shape of one observation, or of one set element when ``set_valued``.
        set_valued: observations are sets ``(*batch, K, *element_shape)``.
        summary: summary kind (see :func:`inference.posterior.summary.build_summary`).
        summary_dim: summary width.
        summary_hidden: summary hidden width.
        flow: keyword arguments of :func:`inference.posterior.conditional_flow.build_flow` (coupling, blocks, hidden,
            ...).

    Example:
        >>> import torch
        >>> m = ConditionalINN(4, (2,), summary="mlp", flow={"blocks": 2, "hidden": 16})
        >>> x = torch.randn(3, 2)
        >>> m.sample(5, x, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([5, 3, 4])
    """

    def __init__(
        self,
        dim: int,
        element_shape: tuple[int, ...],
        *,
        set_valued: bool = False,
        summary: str = "mlp",
        summary_dim: int = 32,
        summary_hidden: int = 64,
        flow: dict[str, Any] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.dim, self.element_shape, self.set_valued = dim, tuple(element_shape), set_valued
        self.summary = build_summary(summary, self.element_shape, out_dim=summary_dim, hidden=summary_hidden)
        self.flow = build_flow(dim, cond_dim=self.summary.out_dim, seed=seed, **(flow or {}))
        self.register_buffer("theta_mean", torch.zeros(dim))
        self.register_buffer("theta_std", torch.ones(dim))
        self.register_buffer("x_mean", torch.zeros(self.element_shape))
        self.register_buffer("x_std", torch.ones(self.element_shape))

    @torch.no_grad()
    def set_standardization(self, theta: torch.Tensor, x: torch.Tensor) -> None:
        """Store means and standard deviations of training theta (N, D) and x (N, [K,] *element_shape)."""
        x = x.reshape(-1, *self.element_shape)
        self.theta_mean.copy_(theta.mean(0))
        self.theta_std.copy_(theta.std(0).clamp_min(1e-8))
        self.x_mean.copy_(x.mean(0))
        self.x_std.copy_(x.std(0).clamp_min(1e-8))

    def summarize(self, x: torch.Tensor) -> torch.Tensor:
        """h = phi(standardized x): (*batch, [K,] *element_shape) -> (*batch, C)."""
        return self.summary((x - self.x_mean) / self.x_std)

    def log_prob_given(self, theta: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """log q(theta | h) for theta (*, D) and summaries h broadcastable to (*, C); returns (*)."""
        u = (theta - self.theta_mean) / self.theta_std
        h = h.expand(*u.shape[:-1], h.shape[-1])
        z, log_det = self.flow(u, h)
        log_n = -0.5 * z.square().sum(-1) - 0.5 * self.dim * math.log(2 * math.pi)
        return log_n + log_det - self.theta_std.log().sum()

    def log_prob(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log q(theta | x): theta (*, D), x (*, [K,] *element_shape) -> (*)."""
        return self.log_prob_given(theta, self.summarize(x))

    def sample_given(self, n: int, h: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw n samples for each summary h of shape (B, C): returns (n, B, D).

        The latent draws fill the output, which the inverse passes then overwrite chunk by chunk (2^15 draws x
        observations each; 2^14 when threaded), so memory stays at one output tensor. On the CPU with more than one
        torch thread and gradients off, the chunks are spread over that many Python threads, each running its ops
        on one torch thread (torch releases the GIL inside ops), instead of splitting every op over the threads:
        the ops of a chunk are small (a few MB), and on 2 cores per-op splitting sampled arm-cinn 1.4x faster than
        one thread, per-chunk threads 1.5-1.7x. While they run, ``torch.get_num_threads()`` is 1 process-wide.
        """
        b = h.shape[0]
        out = torch.empty((n, b, self.dim), device=h.device, dtype=h.dtype).normal_(generator=generator)
        if n == 0 or b == 0:
            return out
        terms = self.flow.condition_terms(h)
        if torch.is_grad_enabled():  # differentiable: out-of-place chunks
            per = max(1, _CHUNK // b)
            chunks = [self.flow.sample_inverse(out[i : i + per], h, terms=terms) for i in range(0, n, per)]
            return torch.cat(chunks) * self.theta_std + self.theta_mean
        torch_threads = torch.get_num_threads()
        threaded = torch_threads > 1 and h.device.type == "cpu"
        per = max(1, (_CHUNK_THREADED if threaded else _CHUNK) // b)
        starts = range(0, n, per)

        def one(start: int) -> None:
            with torch.no_grad():  # grad mode is per thread
                chunk = out[start : start + per]
                x = self.flow.sample_inverse(chunk, h, terms=terms)  # done reading chunk before it is overwritten
                torch.mul(x, self.theta_std, out=chunk).add_(self.theta_mean)

        threads = min(torch_threads, len(starts)) if threaded else 1
        if threads == 1:
            for start in starts:
                one(start)
            return out
        torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(one, starts))
        finally:
            torch.set_num_threads(torch_threads)
        return out

    @torch.no_grad()
    def sample(self, n: int, x: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Posterior draws for observations x of shape (*batch, [K,] *element_shape): returns (n, *batch, D)."""
        h = self.summarize(x)
        batch = h.shape[:-1]
        return self.sample_given(n, h.reshape(-1, h.shape[-1]), generator=generator).reshape(n, *batch, self.dim)


class CINNPosterior:
    """The cINN posterior for a fixed batch of observations (summaries computed once).

    Attributes:
        has_log_prob: ``True``: exact density of the flow.
    """

    has_log_prob = True

    def __init__(self, model: ConditionalINN, h: torch.Tensor, batch: tuple[int, ...]) -> None:
        self.model, self.h, self.batch = model, h, batch

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws per observation, shape (n, *batch, D)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative integer number of draws, got {n!r}")
        s = self.model.sample_given(n, self.h.reshape(-1, self.h.shape[-1]), generator=generator)
        return s.reshape(n, *self.batch, self.model.dim)

    @torch.no_grad()
    def log_prob(self, theta: torch.Tensor) -> torch.Tensor:
        """log q(theta | x_o) for theta (*sample, *batch, D); returns (*sample, *batch)."""
        if theta.shape[-1] != self.model.dim:
            raise ValueError(f"theta must have shape (*, *batch, {self.model.dim}), got {tuple(theta.shape)}")
        return self.model.log_prob_given(theta.to(self.h), self.h)


class CINNEstimator:
    """A trained conditional INN for one simulator (see the module docstring).

    Attributes:
        method: ``"cinn"``.
        simulator, options, budget: what it was trained for and with.
        model: the :class:`ConditionalINN`.
        score: the :class:`~inference.posterior.misspecification.SummaryMahalanobis` misspecification score.
        info: training record (steps, seconds, best validation loss).
    """

    method = "cinn"

    def __init__(
        self,
        model: ConditionalINN,
        *,
        simulator: Simulator,
        options: CINNOptions,
        budget: int | None,
        score: SummaryMahalanobis,
        info: dict[str, Any] | None = None,
    ) -> None:
        self.model, self.simulator, self.options, self.budget = model, simulator, options, budget
        self.score, self.info = score, dict(info or {})

    def check_observation(self, x_o: torch.Tensor) -> torch.Tensor:
        """Validate ``x_o`` against the simulator's observation (or set-element) shape; returns it as float."""
        if not isinstance(x_o, torch.Tensor):
            raise ValueError(f"x_o must be a torch.Tensor, got {type(x_o).__name__}")
        shape = self.model.element_shape
        k = len(shape)
        if self.model.set_valued:
            if x_o.ndim < k + 1 or tuple(x_o.shape[x_o.ndim - k :]) != shape:
                raise ValueError(
                    f"x_o must be a set of shape (*, K, {', '.join(map(str, shape))}) for {self.simulator.name}, "
                    f"got {tuple(x_o.shape)}; each set element has shape {shape}"
                )
            if x_o.shape[x_o.ndim - k - 1] == 0:
                raise ValueError(f"x_o is an empty set (K = 0); expected at least one element of shape {shape}")
        elif x_o.ndim < k or tuple(x_o.shape[x_o.ndim - k :]) != shape:
            raise ValueError(f"x_o must have shape (*, {', '.join(map(str, shape))}), got {tuple(x_o.shape)}")
        if not torch.isfinite(x_o).all():
            raise ValueError("x_o contains NaN or infinite values; expected finite observations")
        return x_o.to(self.model.theta_mean)

    def _batch(self, x_o: torch.Tensor) -> tuple[int, ...]:
        k = len(self.model.element_shape) + int(self.model.set_valued)
        return tuple(x_o.shape[: x_o.ndim - k])

    @torch.no_grad()
    def posterior(self, x_o: torch.Tensor) -> CINNPosterior:
        """The posterior for observations ``x_o`` of shape (*batch, *obs_shape); for sets (*batch, K, *element)."""
        x_o = self.check_observation(x_o)
        return CINNPosterior(self.model, self.model.summarize(x_o), self._batch(x_o))

    @torch.no_grad()
    def misspecification(self, x_o: torch.Tensor) -> Misspecification:
        """Summary-space Mahalanobis distance and p-value of each observation, shapes (*batch)."""
        x_o = self.check_observation(x_o)
        return self.score(self.model.summarize(x_o))

    def save(self, directory: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write ``estimator.json`` + ``weights.safetensors`` (see :func:`inference.api.save_estimator`)."""
        m = self.model
        config = {
            "dim": m.dim,
            "element_shape": list(m.element_shape),
            "set_valued": m.set_valued,
            "model": self.architecture(self.options, self.simulator),
            "training": self.info,
        }
        tensors = {f"model.{k}": v for k, v in m.state_dict().items()}
        tensors.update(self.score.state())
        return save_estimator(
            directory,
            method=self.method,
            simulator=self.simulator,
            options=self.options,
            budget=self.budget,
            config=config,
            tensors=tensors,
            overwrite=overwrite,
        )

    @staticmethod
    def architecture(options: CINNOptions, simulator: Simulator) -> dict[str, Any]:
        """The :class:`ConditionalINN` keyword arguments implied by ``options`` for ``simulator``."""
        summary = options.summary
        if summary == "auto":
            summary = "deepset" if simulators.is_set_valued(simulator) else "mlp"
        flow = {
            "coupling": options.coupling,
            "blocks": options.blocks,
            "hidden": options.hidden,
            "layers": options.layers,
            "clamp": options.clamp,
            "bins": options.bins,
            "actnorm": options.actnorm,
        }
        return {
            "summary": summary,
            "summary_dim": options.summary_dim,
            "summary_hidden": options.summary_hidden,
            "flow": flow,
        }


def _shapes(simulator: Simulator) -> tuple[tuple[int, ...], bool]:
    if simulators.is_set_valued(simulator):
        return tuple(simulator.element_shape), True
    return tuple(simulator.obs_shape), False


def build_model(simulator: Simulator, options: CINNOptions, *, seed: int = 0) -> ConditionalINN:
    """A fresh :class:`ConditionalINN` for ``simulator`` with the architecture of ``options``."""
    element_shape, set_valued = _shapes(simulator)
    arch = CINNEstimator.architecture(options, simulator)
    return ConditionalINN(len(simulator.param_names), element_shape, set_valued=set_valued, seed=seed, **arch)


def _simulate(simulator: Simulator, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    theta = simulators.sample_prior(simulator.prior, n, generator=generator)
    return theta, simulator.simulate(theta, generator=generator).to(theta.dtype)


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
    o = options
    if o.coupling not in ("affine", "spline"):
        raise ValueError(f"coupling must be 'affine' or 'spline', got {o.coupling!r}")
    if o.val_statistic not in ("median", "mean"):
        raise ValueError(f"val_statistic must be 'median' or 'mean', got {o.val_statistic!r}")
    if not 0 < o.val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {o.val_fraction}")
    if isinstance(o.restarts, bool) or not isinstance(o.restarts, int) or o.restarts < 1:
        raise ValueError(f"restarts must be an integer >= 1, got {o.restarts!r}")
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    seed = int(torch.randint(0, 2**31 - 1, (), generator=gen))
    model = build_model(simulator, o, seed=seed)
    _reset_parameters(model, gen)
    set_valued = model.set_valued
    lo, hi = simulator.n_obs if set_valued else (1, 1)
    if simulations is not None:
        budget = len(simulations[0])
    online = (budget is None or o.online) and simulations is None

    n_val = max(256, int(o.val_fraction * budget)) if budget is not None else 4096
    if budget is not None and not online and budget - n_val < o.batch_size:
        raise ValueError(f"budget {budget} is too small: need at least batch_size + {n_val} validation simulations")
    if simulations is not None:
        theta_all, x_all = (t.to(simulations[0].dtype) for t in simulations)
        theta_tr, x_tr, theta_val, x_val = theta_all[:-n_val], x_all[:-n_val], theta_all[-n_val:], x_all[-n_val:]
    else:
        theta_val, x_val = _simulate(simulator, n_val, gen)
        theta_tr, x_tr = _simulate(simulator, _PILOT if online else budget - n_val, gen)
    model.set_standardization(theta_tr, x_tr)
    device = torch.device(o.device)
    model.to(device)
    theta_val, x_val = theta_val.to(device), x_val.to(device)

    def batches(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        if online:
            theta, x = _simulate(simulator, o.batch_size, gen)
        else:
            idx = torch.randint(0, len(theta_tr), (o.batch_size,), generator=gen)
            theta, x = theta_tr[idx], x_tr[idx]
        if set_valued:  # one set size per batch, uniform over the range; elements are i.i.d., so take the first K
            k = int(torch.randint(lo, hi + 1, (), generator=gen))
            x = x[:, :k]
        return theta.to(device), x.to(device)

    def loss_fn(batch: tuple[torch.Tensor, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        theta, x = batch
        return {"loss": -model.log_prob(theta, x).mean() / model.dim}

    val_ks = sorted({lo, (lo + hi) // 2, hi})

    def val_loss() -> float:
        # By default the median, not the mean, of the held-out negative log-likelihood: for near-degenerate
        # posteriors (the noise-free arm's lie on 2-D manifolds in 4-D) the mean is dominated by a handful of held-out
        # points just off the learned manifold, and stops improving long before typical points (and the
        # re-simulation error) do.
        stat = torch.median if o.val_statistic == "median" else torch.mean
        if not set_valued:
            return float(stat(-model.log_prob(theta_val, x_val)) / model.dim)
        nll = [float(stat(-model.log_prob(theta_val, x_val[:, :k]))) for k in val_ks]
        return sum(nll) / (len(val_ks) * model.dim)

    config = TrainConfig(
        steps=o.steps,
        lr=o.lr,
        schedule="cosine",
        grad_clip=10.0,
        val_every=o.val_every,
        patience=o.patience,
        checkpoint_every=o.val_every if o.checkpoint_dir else 0,
    )
    t0 = time.perf_counter()
    restart_calibration = []  # held-out calibration error of each restart (restarts > 1)
    cal_seed = int(torch.randint(0, 2**31 - 1, (), generator=gen)) if o.restarts > 1 else 0
    kept = None  # (model, history) of the best restart so far

    def checkpoints(r: int) -> str | None:
        if o.checkpoint_dir is None or o.restarts == 1:
            return o.checkpoint_dir
        return os.path.join(o.checkpoint_dir, f"restart{r}")

    for r in range(o.restarts):
        if r:  # a fresh network: new initialization, permutations and batch order; same simulations
            model = build_model(simulator, o, seed=int(torch.randint(0, 2**31 - 1, (), generator=gen)))
            _reset_parameters(model, gen)
            model.set_standardization(theta_tr, x_tr)
            model.to(device)
        history = train(
            model,
            loss_fn,
            batches,
            config=config,
            val_loss=val_loss,
            checkpoint_dir=checkpoints(r),
            resume=o.resume,
            progress=progress,
            desc="cinn" if o.restarts == 1 else f"cinn {r + 1}/{o.restarts}",
        )
        if o.restarts > 1:
            error = _held_out_calibration(model, theta_val, x_val, hi, cal_seed)
            if error < min(restart_calibration, default=math.inf):
                kept = (model, history)
            restart_calibration.append(error)
    if kept is not None:
        model, history = kept
    with torch.no_grad():  # reference summaries for the misspecification score: held-out simulations
        if set_valued:
            ks = torch.randint(lo, hi + 1, (len(x_val),), generator=gen).to(device)
            h = torch.cat([model.summarize(x_val[ks == k, :k]) for k in range(lo, hi + 1) if (ks == k).any()])
        else:
            h = model.summarize(x_val)
    model.cpu()
    h = h.cpu()
    info = {
        "steps": history.steps[-1] if history.steps else 0,
        "seconds": round(time.perf_counter() - t0, 1),
        "best_val_loss": history.best_val if math.isfinite(history.best_val) else None,
        "best_step": history.best_step,
        "stopped_early": history.stopped_early,
        "online": online,
    }
    if restart_calibration:
        info["restart_calibration_errors"] = [round(c, 5) for c in restart_calibration]
        info["restart_kept"] = restart_calibration.index(min(restart_calibration))
        info["restart_calibration_seed"] = cal_seed
    return CINNEstimator(
        model, simulator=simulator, options=o, budget=budget, score=SummaryMahalanobis.fit(h), info=info
    )


@torch.no_grad()
def _held_out_calibration(
    model: ConditionalINN, theta: torch.Tensor, x: torch.Tensor, set_size: int, seed: int
) -> float:
    """Marginal calibration error (thesis sec. 4.2) of ``model`` on held-out simulations, 200 draws each.

    Sets are scored at their largest size. The latent draws come from ``seed``, so that restarts are compared on the
    same draws.
    """
    from inference.evaluation.diagnostics import calibration_error

    if model.set_valued:
        x = x[:, :set_size]
    h = model.summarize(x)
    draws = model.sample_given(_CALIBRATION_DRAWS, h, generator=torch.Generator(h.device).manual_seed(seed))
    return float(calibration_error(draws.cpu(), theta.cpu()).error)


@torch.no_grad()
def _reset_parameters(model: nn.Module, generator: torch.Generator) -> None:
    """Re-draw every linear / conv weight from ``generator`` (torch's default init) so training is reproducible
    without touching the global random state; layers marked ``zero_init`` (last layers of the coupling
    subnetworks) start at zero, so every block starts as the identity."""
    for module in model.modules():
        if isinstance(module, nn.Linear | nn.Conv1d):
            if getattr(module, "zero_init", False):
                nn.init.zeros_(module.weight)
                nn.init.zeros_(module.bias)
                continue
            nn.init.kaiming_uniform_(module.weight, a=5**0.5, generator=generator)
            fan_in = module.weight[0].numel()
            nn.init.uniform_(module.bias, -(fan_in**-0.5), fan_in**-0.5, generator=generator)


def load_cinn(files: EstimatorFiles) -> CINNEstimator:
    """Rebuild a :class:`CINNEstimator` from its directory (see :meth:`CINNEstimator.save`)."""
    cfg = files.config
    weights = files.directory / "weights.safetensors"
    try:
        model = ConditionalINN(
            int(cfg["dim"]), tuple(cfg["element_shape"]), set_valued=bool(cfg["set_valued"]), **cfg["model"]
        )
        state = {k[len("model.") :]: v for k, v in files.tensors.items() if k.startswith("model.")}
        model.load_state_dict(state)
        score = SummaryMahalanobis.from_state(files.tensors)
    except (KeyError, TypeError, RuntimeError) as e:
        raise ValueError(
            f"{weights} does not match {files.directory / 'estimator.json'} ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:120]}); the estimator is corrupt, retrain it (zoo train / --retrain)"
        ) from e
    model.eval()
    return CINNEstimator(
        model,
        simulator=files.simulator,
        options=files.options,
        budget=files.budget,
        score=score,
        info=cfg.get("training", {}),
    )


register_method("cinn", fit_cinn, load_cinn, CINNOptions)
