"""One generic training loop shared by every trainable thing in zoo (priors, subjects, posterior estimators).

The loop knows nothing about the model: it draws a batch, asks a loss function for a dict of named terms
(``"loss"`` is the one optimized), steps the optimizer, and takes care of the parts every method needs —
learning-rate schedule, gradient clipping, a progress bar with the loss terms, validation with early stopping,
checkpoints that a run can resume from, and a clear stop when the loss diverges.

It lives in ``zoo/`` (the lowest model layer) so that ``zoo`` can train its shipped models and ``inference``
its estimators with the same code, without ``zoo`` importing ``inference``.
"""

from __future__ import annotations

import base64
import json
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from safetensors.torch import save as save_bytes
from tqdm.auto import tqdm

from simulators.devices import check_device
from simulators.writes import check_folder, write_atomic
from zoo import distributed

CHECKPOINT = "checkpoint.safetensors"

LossFn = Callable[[Any, int], Mapping[str, torch.Tensor]]
BatchFn = Callable[[int], Any]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the model holds the last good weights."""


SCHEDULES = ("constant", "cosine", "step")
FLOAT32_MAX = 3.4028234663852886e38


@dataclass(frozen=True)
class TrainConfig:
    """How a network is trained: one config, with one meaning, for every trained thing in zoo.

    Every trained posterior method nests it in its options (``CINNOptions.train``, ``INNOptions.train``,
    ``FiberModelOptions.train``; ``--option train.lr=1e-3`` on the command line), and the shipped models' recipes
    build one. The loop (:func:`train`) reads the optimizer, schedule, clipping, validation and checkpoint settings;
    the methods read ``batch_size``, ``device`` and ``restarts``.

    Attributes:
        steps: number of optimizer steps (>= 1).
        batch_size: simulations (or images) per step.
        lr: Adam learning rate.
        betas: Adam betas.
        weight_decay: Adam (L2) weight decay.
        schedule: ``"constant"``, ``"cosine"`` (to 1% of ``lr``) or ``"step"`` (x0.1 at 50% and 80%).
        warmup: linear learning-rate warm-up steps.
        grad_clip: maximum global gradient norm (``None`` disables clipping).
        skip_nonfinite: steps in a row whose loss or gradient norm is NaN or infinite that are skipped (no update,
            as AMP's gradient scaler does) before the run counts as diverged; 0: the first one stops it. A rare
            extreme batch (e.g. a far-out backward draw) then costs one step instead of the run; weights that have
            really gone bad keep failing and still stop the run.
        val_every: evaluate the validation loss every this many steps (0 disables validation).
        patience: stop after this many validations without improvement (0 disables early stopping); the best
            weights are restored at the end.
        checkpoint_dir: where checkpoints are written (``None``: none). Methods with restarts use one subfolder
            per restart.
        checkpoint_every: steps between checkpoints (with a ``checkpoint_dir``).
        resume: continue from the checkpoint in ``checkpoint_dir`` when there is one.
        device: where to train (``"cpu"``, ``"cuda"``, ...).
        restarts: train this many networks (different initializations and batch orders) and keep the best by the
            method's held-out criterion (1: no restarts). Methods that do not restart require 1.
    """

    steps: int = 1000
    batch_size: int = 256
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    schedule: str = "cosine"
    warmup: int = 0
    grad_clip: float | None = 10.0
    skip_nonfinite: int = 0
    val_every: int = 0
    patience: int = 0
    checkpoint_dir: str | None = None
    checkpoint_every: int = 500
    resume: bool = False
    device: str = "cpu"
    restarts: int = 1

    def __post_init__(self) -> None:
        # JSON round trips turn tuples into lists; normalize so that equality and hashing work.
        if isinstance(self.betas, list | tuple) and len(self.betas) == 2:
            object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        else:
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        for name in ("steps", "batch_size", "restarts"):
            _check_int(name, getattr(self, name), minimum=1)
        for name in ("warmup", "skip_nonfinite", "val_every", "patience", "checkpoint_every"):
            _check_int(name, getattr(self, name), minimum=0)
        if not (isinstance(self.lr, int | float) and not isinstance(self.lr, bool) and 0 < self.lr < FLOAT32_MAX):
            raise ValueError(f"lr must be a positive number below {FLOAT32_MAX:.3g} (float32 weights), got {self.lr!r}")
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        if not (isinstance(self.weight_decay, int | float) and 0 <= self.weight_decay < math.inf):
            raise ValueError(f"weight_decay must be a finite number >= 0, got {self.weight_decay!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be 'constant', 'cosine' or 'step', got {self.schedule!r}")
        clip = self.grad_clip
        if clip is not None and not (isinstance(clip, int | float) and not isinstance(clip, bool) and clip > 0):
            raise ValueError(f"grad_clip must be a positive number or None, got {clip!r}")
        if not isinstance(self.resume, bool):
            raise ValueError(f"resume must be true or false, got {self.resume!r}")
        check_device(self.device, available=False)  # where it runs is checked when training starts


def _check_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


@dataclass
class TrainHistory:
    """What a run did: per-step training terms (averaged per logging window) and validation losses."""

    steps: list[int] = field(default_factory=list)
    train: list[dict[str, float]] = field(default_factory=list)
    val_steps: list[int] = field(default_factory=list)
    val: list[float] = field(default_factory=list)
    best_val: float = math.inf
    best_step: int = -1
    stopped_early: bool = False
    skipped_steps: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def lr_factor(step: int, config: TrainConfig) -> float:
    """The multiplier of ``config.lr`` at ``step`` (warm-up, then the schedule)."""
    if config.warmup and step < config.warmup:
        return (step + 1) / config.warmup
    frac = step / max(config.steps, 1)
    if config.schedule == "cosine":
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * frac))
    if config.schedule == "step":
        return 1.0 if frac < 0.5 else (0.1 if frac < 0.8 else 0.01)
    return 1.0


def train(
    model: torch.nn.Module,
    loss_fn: LossFn,
    batches: BatchFn,
    *,
    config: TrainConfig = TrainConfig(),
    val_loss: Callable[[], float] | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool | None = None,
    progress: bool = True,
    desc: str = "training",
    log_every: int = 50,
    params: list[torch.nn.Parameter] | None = None,
    rng: torch.Generator | None = None,
) -> TrainHistory:
    """Train ``model`` by minimizing ``loss_fn(batches(step), step)["loss"]``.

    Arguments:
        model: the module whose parameters are optimized (and checkpointed).
        loss_fn: maps ``(batch, step)`` to a dict of scalar terms; ``"loss"`` is minimized, all are logged.
        batches: maps a step index to a batch (fresh simulations, or a slice of a fixed table).
        config: optimizer, schedule, clipping, validation and checkpoint settings.
        val_loss: called without arguments under ``torch.no_grad()``; returns the validation loss.
        checkpoint_dir: where checkpoints go (one ``checkpoint.safetensors``: weights, best weights, optimizer state,
            progress and the batch generator's state, replaced atomically); default
            ``config.checkpoint_dir``.
        resume: continue from the checkpoint in ``checkpoint_dir`` if there is one; default ``config.resume``.
        progress: show a tqdm bar with the loss terms.
        params: parameters to optimize (default: all of ``model``'s).
        rng: the generator ``batches`` draws from: its state is checkpointed and restored on resume, so that a
            resumed run sees the same batches, and ends with the same weights, as an uninterrupted one.

    Returns:
        The run's :class:`TrainHistory`. On return the model holds the best validation weights (or the last
        weights when there is no validation).

    Raises:
        TrainingDiverged: the loss became non-finite; the model is restored to the last good weights and, with a
            ``checkpoint_dir``, that state is on disk.
    """
    check_device(config.device)
    params = list(model.parameters()) if params is None else params
    opt = torch.optim.Adam(params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    history = TrainHistory()
    start = 0
    checkpoint_dir = config.checkpoint_dir if checkpoint_dir is None else checkpoint_dir
    resume = config.resume if resume is None else resume
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if ckpt is not None:
        check_folder(ckpt, "checkpoint folder")  # a file there: one line now, not an OSError at the first save
    distributed.broadcast_parameters(model)
    best_state: dict[str, torch.Tensor] | None = None
    if resume and ckpt is not None and (ckpt / CHECKPOINT).exists():
        start, history, best_state = _load_checkpoint(ckpt, model, opt, rng)
    last_good = _clone_state(model)
    bad_vals = 0
    bad_steps = 0
    window: dict[str, float] = {}
    n_window = 0
    t0 = time.perf_counter()
    bar = tqdm(range(start, config.steps), desc=desc, disable=not progress, initial=start, total=config.steps)
    model.train()
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = config.lr * lr_factor(step, config)
        terms = loss_fn(batches(step), step)
        loss = terms["loss"]
        finite = distributed.all_finite(bool(torch.isfinite(loss)), loss.device)  # every rank steps, or none
        if finite:
            opt.zero_grad(set_to_none=True)
            loss.backward()
            distributed.average_gradients(params)  # data parallel: the gradient of all ranks' batches
            finite = _clip_gradients(params, config.grad_clip)
        if finite:
            bad_steps = 0
            # the last good weights are these, which gave a finite loss and gradient, not the ones their update
            # makes (a learning rate that blows the weights up makes finite but useless ones; resuming from those
            # diverged again at once)
            last_good = _clone_state(model)
            opt.step()
            for k, v in terms.items():
                window[k] = window.get(k, 0.0) + float(v.detach())
            n_window += 1
        else:  # skipped: no update, not logged; validation and checkpoints below still run on schedule
            bad_steps += 1
            history.skipped_steps += 1
            opt.zero_grad(set_to_none=True)
            if bad_steps > config.skip_nonfinite:
                model.load_state_dict(last_good)
                where = ""
                if ckpt is not None:
                    _save_checkpoint(ckpt, model, opt, step, history, rng, best_state)
                    where = f"; last good weights saved in {ckpt}"
                what = f"loss became {loss.item()}" if not torch.isfinite(loss) else "gradient became non-finite"
                streak = f" ({bad_steps} steps in a row)" if bad_steps > 1 else ""
                raise TrainingDiverged(
                    f"{what} at step {step}{streak}{where}; lower the learning rate (lr={config.lr}) "
                    "or tighten gradient clipping"
                )
        if n_window and ((step + 1) % log_every == 0 or step + 1 == config.steps):
            mean = {k: v / n_window for k, v in window.items()}
            history.steps.append(step + 1)
            history.train.append(mean)
            bar.set_postfix({k: f"{v:.3g}" for k, v in mean.items()})
            window, n_window = {}, 0

        if val_loss is not None and config.val_every and (step + 1) % config.val_every == 0:
            model.eval()
            with torch.no_grad():
                v = float(val_loss())
            model.train()
            history.val_steps.append(step + 1)
            history.val.append(v)
            if v < history.best_val:
                history.best_val, history.best_step, bad_vals = v, step + 1, 0
                best_state = _clone_state(model)
            else:
                bad_vals += 1
                if config.patience and bad_vals >= config.patience:
                    history.stopped_early = True
                    if ckpt is not None:
                        _save_checkpoint(ckpt, model, opt, step + 1, history, rng, best_state)
                    break
        if ckpt is not None and config.checkpoint_every and (step + 1) % config.checkpoint_every == 0:
            _save_checkpoint(ckpt, model, opt, step + 1, history, rng, best_state)
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    history.seconds += time.perf_counter() - t0
    if ckpt is not None:
        _save_checkpoint(
            ckpt, model, opt, config.steps if not history.stopped_early else step + 1, history, rng, best_state
        )
    return history


def _clip_gradients(params: list[torch.nn.Parameter], max_norm: float | None) -> bool:
    """Clip the gradients' global norm to ``max_norm`` (``None``: no clipping); ``False`` if the norm is NaN / inf.

    The norm is computed either way, to catch a non-finite gradient before it reaches the weights. A norm that
    overflows float32 (gradient entries beyond ~1e19) counts as non-finite too: it only happened here in runs whose
    weights were already blowing up (arm INN, backward draws of 1e12), which should stop rather than go on.
    """
    # with a non-finite norm clip_grad_norm_ zeroes or poisons the gradients: the caller skips the step anyway
    norm = torch.nn.utils.clip_grad_norm_(params, math.inf if max_norm is None else max_norm)
    return bool(torch.isfinite(norm))


def _clone_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def _save_checkpoint(
    ckpt: Path,
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    step: int,
    history: TrainHistory,
    rng: torch.Generator | None,
    best_state: dict[str, torch.Tensor] | None,
) -> None:
    """One file, replaced atomically, so that a kill at any moment leaves the previous checkpoint or this one, never a
    mix: weights (``model.*``), best validation weights (``best.*``), optimizer tensors (``opt.*``), and as metadata
    the step, history, optimizer scalars and the batch generator's state. Across processes, rank 0 writes it."""
    if distributed.rank() != 0:
        return
    tensors = {f"model.{k}": v for k, v in _clone_state(model).items()}
    opt_tensors, opt_meta = _flatten_optimizer(opt)
    tensors.update({f"opt.{k}": v for k, v in opt_tensors.items()})
    tensors.update({f"best.{k}": v.contiguous() for k, v in (best_state or {}).items()})
    meta = {"step": step, "history": history.to_json(), "optimizer": opt_meta}
    if rng is not None:
        meta["rng_state"] = base64.b64encode(rng.get_state().numpy().tobytes()).decode()
    ckpt.mkdir(parents=True, exist_ok=True)
    write_atomic(ckpt / CHECKPOINT, save_bytes(tensors, metadata={"zoo_checkpoint": json.dumps(meta)}))


def read_checkpoint_meta(ckpt: str | os.PathLike) -> dict[str, Any]:
    """The progress record of the checkpoint in folder ``ckpt`` (``step``, ``history``, ...)."""
    with safe_open(str(Path(ckpt) / CHECKPOINT), "pt") as f:
        return json.loads(f.metadata()["zoo_checkpoint"])


def _load_checkpoint(
    ckpt: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, rng: torch.Generator | None
) -> tuple[int, TrainHistory, dict[str, torch.Tensor] | None]:
    meta = read_checkpoint_meta(ckpt)
    tensors = load_file(str(ckpt / CHECKPOINT))
    part = lambda prefix: {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}  # noqa: E731
    model.load_state_dict(part("model."))
    _restore_optimizer(opt, part("opt."), meta["optimizer"])
    if rng is not None and "rng_state" in meta:
        rng.set_state(torch.frombuffer(bytearray(base64.b64decode(meta["rng_state"])), dtype=torch.uint8))
    return int(meta["step"]), TrainHistory(**meta["history"]), part("best.") or None


def _flatten_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, float]] = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor) and v.ndim > 0:
                tensors[f"{pid}.{k}"] = v.detach().contiguous()
            else:
                scalars.setdefault(str(pid), {})[k] = float(v)
    return tensors, {"scalars": scalars}


def _restore_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    sd = opt.state_dict()
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    for pid, st in meta["scalars"].items():
        for k, v in st.items():
            state.setdefault(int(pid), {})[k] = torch.tensor(v)
    sd["state"] = state
    opt.load_state_dict(sd)
