"""The recipes that train zoo's shipped models (``zoo train prior|subject NAME``), on simulator data.

Every recipe is a frozen :class:`Recipe` (architecture, data, optimizer settings, seed) plus a loss; training goes
through the one shared loop (:func:`zoo.training.train`). The result is a zoo-format directory whose ``zoo.json``
records the recipe, seed, settings, the exact ``zoo train`` command, wall-clock time and held-out metrics, so a
shipped model can be reproduced bit-for-bit on the same machine and torch version.

Objectives:
    DDPM prior (Ho et al. 2020): E_{x0, t, eps} || eps_theta(sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, t) - eps ||^2,
        x0 the colored image mapped to [-1, 1]; sampling uses an exponential moving average (EMA) of the weights.
    color-MNIST autoencoder: || dec(enc(decolorize(x))) - decolorize(x) ||^2 over random recolorings x.
    digits classifier: cross-entropy of colored digits (tied and independent colors, shifted by up to 1 pixel).

Digits are split once by a fixed permutation (seed 0): the last 15% are held out for the reported metrics.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import simulators
from simulators.color_mnist import colorize, decolorize, digit_color, sample_colors
from zoo.architectures import COLOR_MNIST_UNET, build
from zoo.format import write_zoo_dir
from zoo.training import TrainConfig, train

HELD_OUT = 0.15


@dataclass(frozen=True)
class Recipe:
    """How one shipped model is trained.

    Attributes:
        name: the model name (and registry key).
        role: ``"prior"`` or ``"subject"``.
        kind: ``"ddpm"``, ``"autoencoder"`` or ``"classifier"``.
        architecture: a name from :mod:`zoo.architectures`.
        config: constructor arguments (image size is filled in from the data).
        variant: the color-MNIST variant the data come from (``"tied"`` or ``"ood"``).
        steps, batch_size, lr, warmup, grad_clip: optimizer settings (Adam, cosine schedule).
        seed: seeds the initialization and the data stream.
        ema: EMA decay of the weights that are saved (DDPM only; 0 disables).
        scheduler: diffusers scheduler config (DDPM only).
        description: one line for ``zoo list --models``.
    """

    name: str
    role: str
    kind: str
    architecture: str
    config: dict[str, Any]
    variant: str = "tied"
    steps: int = 2000
    batch_size: int = 64
    lr: float = 1e-3
    warmup: int = 0
    grad_clip: float | None = 1.0
    seed: int = 0
    ema: float = 0.0
    scheduler: dict[str, Any] = field(default_factory=dict)
    description: str = ""


_DDPM_SCHEDULER = {
    "num_train_timesteps": 1000,
    "beta_schedule": "squaredcos_cap_v2",
    "prediction_type": "epsilon",
    "clip_sample": True,
    "clip_sample_range": 1.0,
}

RECIPES: dict[str, Recipe] = {
    "color-mnist-ddpm": Recipe(
        name="color-mnist-ddpm",
        role="prior",
        kind="ddpm",
        architecture="diffusers.UNet2DModel",
        config=COLOR_MNIST_UNET,
        variant="tied",
        steps=2000,
        batch_size=64,
        lr=1e-3,
        warmup=200,
        ema=0.999,
        scheduler=_DDPM_SCHEDULER,
        description="DDPM prior of color-MNIST (digit color tied to background)",
    ),
    "color-mnist-ood-ddpm": Recipe(
        name="color-mnist-ood-ddpm",
        role="prior",
        kind="ddpm",
        architecture="diffusers.UNet2DModel",
        config=COLOR_MNIST_UNET,
        variant="ood",
        steps=2000,
        batch_size=64,
        lr=1e-3,
        warmup=200,
        ema=0.999,
        scheduler=_DDPM_SCHEDULER,
        description="DDPM prior of color-MNIST with independent digit and background colors (NDTM w/ OOD)",
    ),
    "color-mnist-ae": Recipe(
        name="color-mnist-ae",
        role="subject",
        kind="autoencoder",
        architecture="zoo.color-mnist-ae",
        config={"channels": 3, "latent_dim": 54, "width": 16},
        steps=2000,
        batch_size=128,
        lr=2e-3,
        warmup=100,
        description="encoder(decolorize(x)) of an almost lossless autoencoder; fibers = recolorings",
    ),
    "digits-classifier": Recipe(
        name="digits-classifier",
        role="subject",
        kind="classifier",
        architecture="zoo.digits-cnn",
        config={"in_channels": 3, "num_classes": 10, "width": 16, "embed_dim": 64},
        steps=3000,
        batch_size=128,
        lr=2e-3,
        warmup=100,
        description="small CNN classifier of colored digits (logits over 0-9)",
    ),
}


def names(role: str | None = None) -> list[str]:
    """Names of the recipes (optionally of one role)."""
    return [n for n, r in RECIPES.items() if role is None or r.role == role]


def get_recipe(name: str, role: str | None = None) -> Recipe:
    """The recipe called ``name`` (checked against ``role`` when given)."""
    if name not in RECIPES or (role is not None and RECIPES[name].role != role):
        raise ValueError(f"no {role or 'model'} recipe {name!r}; known: {', '.join(names(role))}")
    return RECIPES[name]


def split_digits(n: int, *, held_out: float = HELD_OUT) -> tuple[torch.Tensor, torch.Tensor]:
    """Train / held-out indices of ``n`` digits: a fixed permutation (seed 0), the last ``held_out`` share held out."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    k = int(round(n * (1 - held_out)))
    return perm[:k], perm[k:]


class EMA(nn.Module):
    """A network with an exponential moving average of its weights (the average is what gets saved).

    The average uses the warm-up decay min(decay, (1 + k) / (10 + k)) after k updates, as in common DDPM code.
    """

    def __init__(self, net: nn.Module, decay: float) -> None:
        super().__init__()
        self.net = net
        self.ema = copy.deepcopy(net).requires_grad_(False)
        self.decay = decay
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self) -> None:
        k = int(self.updates)
        d = min(self.decay, (1 + k) / (10 + k))
        for e, p in zip(self.ema.parameters(), self.net.parameters()):
            e.lerp_(p, 1 - d)
        for e, b in zip(self.ema.buffers(), self.net.buffers()):
            e.copy_(b)
        self.updates += 1


def _data_generator(seed: int, step: int) -> torch.Generator:
    # One generator per step, so that a resumed run sees the same batches as an uninterrupted one.
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def _init(recipe: Recipe, config: dict[str, Any]) -> nn.Module:
    # Seed the initialization without touching the caller's global random state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        return build(recipe.architecture, config)


def train_recipe(
    name: str,
    out: str | os.PathLike,
    *,
    role: str | None = None,
    steps: int | None = None,
    seed: int | None = None,
    batch_size: int | None = None,
    data: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    command: str | None = None,
) -> Path:
    """Train the model of recipe ``name`` and write it as a zoo-format directory ``out``.

    Arguments:
        name: a recipe name (see :data:`RECIPES`).
        out: the output directory.
        role: check that the recipe has this role.
        steps, seed, batch_size: override the recipe's settings.
        data: a local MNIST file / directory (28x28) instead of the embedded 16x16 digits.
        device: where to train.
        checkpoint_dir: where the loop keeps resumable checkpoints (default ``<out>.ckpt``).
        resume: continue from the checkpoint in ``checkpoint_dir``.
        overwrite: replace an existing ``out``.
        progress: show a progress bar.
        command: the command line to record in ``zoo.json`` (the CLI passes its own).

    Returns:
        the path of the written directory.
    """
    recipe = get_recipe(name, role)
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{str(out)!r} exists; pass --overwrite to replace it")
    overrides = {k: v for k, v in (("steps", steps), ("seed", seed), ("batch_size", batch_size)) if v is not None}
    recipe = replace(recipe, **overrides)
    sim = simulators.get("color-mnist", variant=recipe.variant, data=data)
    h, w = sim.image_shape
    config = dict(recipe.config)
    if recipe.architecture == "diffusers.UNet2DModel":
        config["sample_size"] = h
    elif recipe.architecture == "zoo.color-mnist-ae":
        config["size"] = h
    device = torch.device(device)
    net = _init(recipe, config).to(device)
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else out.with_name(out.name + ".ckpt")
    tc = TrainConfig(
        steps=recipe.steps,
        lr=recipe.lr,
        warmup=recipe.warmup,
        grad_clip=recipe.grad_clip,
        schedule="cosine",
        checkpoint_every=max(50, recipe.steps // 40),
    )
    trainer = {"ddpm": _ddpm, "autoencoder": _autoencoder, "classifier": _classifier}[recipe.kind]
    t0 = time.perf_counter()
    module, extra, history = trainer(recipe, sim, net, tc, ckpt, resume, progress, device)
    seconds = time.perf_counter() - t0
    run = {"command": command or _command(name, recipe, out, data), "steps": recipe.steps, "seconds": round(seconds, 1)}
    runs = _record_run(ckpt, run, resume=resume)
    meta: dict[str, Any] = {
        "role": recipe.role,
        "architecture": recipe.architecture,
        "input": {
            "shape": [3, h, w],
            "range": [0.0, 1.0],
            "normalization": extra.pop("normalization", {"mean": 0.0, "std": 1.0}),
        },
        **extra,
        "description": recipe.description,
        "trained_on": f"color-mnist variant {recipe.variant!r}, "
        + (f"MNIST from {str(data)!r}" if data is not None else f"embedded {h}x{w} digits"),
        "parameters": sum(p.numel() for p in module.parameters()),
        "training": {
            "recipe": name,
            "command": " && ".join(r["command"] for r in runs),
            "runs": runs,
            "seed": recipe.seed,
            "settings": {k: v for k, v in asdict(recipe).items() if k not in ("name", "role", "description")},
            "train_config": asdict(tc),
            "device": str(device),
            "threads": torch.get_num_threads(),
            "seconds": round(sum(r["seconds"] for r in runs), 1),
            "loop_seconds": round(history.seconds, 1),
            "final_loss": history.train[-1] if history.train else None,
            "torch": torch.__version__,
        },
    }
    import zoo

    meta["zoo_version"] = zoo.__version__
    return write_zoo_dir(out, module.cpu(), config=config, meta=meta, overwrite=overwrite)


def _record_run(ckpt: Path, run: dict[str, Any], *, resume: bool) -> list[dict[str, Any]]:
    """The invocations that produced the weights: earlier ones (kept in the checkpoint directory when resuming)
    plus this one."""
    path = ckpt / "runs.json"
    runs = json.loads(path.read_text()) if resume and path.is_file() else []
    runs.append(run)
    ckpt.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.partial")
    tmp.write_text(json.dumps(runs, indent=1))
    os.replace(tmp, path)
    return runs


def _command(name: str, recipe: Recipe, out: Path, data) -> str:
    cmd = f"zoo train {recipe.role} {name} --out {out} --steps {recipe.steps} --seed {recipe.seed}"
    cmd += f" --batch-size {recipe.batch_size}"
    return cmd + (f" --data {data}" if data is not None else "")


def _ddpm(recipe, sim, net, tc, ckpt, resume, progress, device):
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler.from_config(recipe.scheduler)
    abar = scheduler.alphas_cumprod.to(device)
    T = scheduler.config.num_train_timesteps
    model = EMA(net, recipe.ema)

    def batches(step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        g = _data_generator(recipe.seed, step)
        x0 = sim.sample(recipe.batch_size, generator=g) * 2 - 1  # [0, 1] -> [-1, 1]
        t = torch.randint(0, T, (recipe.batch_size,), generator=g)
        eps = torch.randn(x0.shape, generator=g)
        return x0.to(device), t.to(device), eps.to(device)

    def loss_fn(batch, step: int) -> dict[str, torch.Tensor]:
        model.update()  # average in the previous optimizer step
        x0, t, eps = batch
        a = abar[t].view(-1, 1, 1, 1)
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
        return {"loss": F.mse_loss(net(x_t, t).sample, eps)}

    history = train(
        model,
        loss_fn,
        batches,
        config=tc,
        checkpoint_dir=ckpt,
        resume=resume,
        progress=progress,
        desc=recipe.name,
        params=list(net.parameters()),
    )
    model.update()
    extra = {
        "kind": "diffusion",
        "scheduler": {"class": "DDPMScheduler", "config": _jsonable(dict(scheduler.config))},
        "normalization": {"mean": 0.5, "std": 0.5},
        "ema_decay": recipe.ema,
    }
    return model.ema, extra, history


def colored_digits(sim, idx: torch.Tensor, g: torch.Generator, *, mixed: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Random recolorings of the digits ``idx`` (tied colors; with ``mixed`` half get an independent digit color)."""
    grey, labels = sim.digits[idx], sim.labels[idx]
    c0 = sample_colors((len(idx),), generator=g)
    c1 = digit_color(c0)
    if mixed:
        other = digit_color(sample_colors((len(idx),), generator=g))
        c1 = torch.where(torch.rand(len(idx), 1, generator=g) < 0.5, other, c1)
    return colorize(grey, c0, c1), labels


def _autoencoder(recipe, sim, net, tc, ckpt, resume, progress, device):
    train_idx, test_idx = split_digits(len(sim.digits))

    def batches(step: int) -> torch.Tensor:
        g = _data_generator(recipe.seed, step)
        idx = train_idx[torch.randint(len(train_idx), (recipe.batch_size,), generator=g)]
        x, _ = colored_digits(sim, idx, g, mixed=False)
        return decolorize(x).to(device)

    def loss_fn(grey: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        return {"loss": F.mse_loss(net.decode(net.encode_grey(grey)), grey)}

    history = train(
        net, loss_fn, batches, config=tc, checkpoint_dir=ckpt, resume=resume, progress=progress, desc=recipe.name
    )
    with torch.no_grad():
        x, _ = colored_digits(sim, test_idx, torch.Generator().manual_seed(1), mixed=False)
        grey = decolorize(x.to(device))
        rmse = float((net.decode(net(x.to(device))) - grey).pow(2).mean().sqrt())
    extra = {
        "kind": "autoencoder",
        "output": "embedding",
        "metrics": {"held_out_reconstruction_rmse": rmse, "held_out_digits": len(test_idx)},
    }
    return net, extra, history


def _classifier(recipe, sim, net, tc, ckpt, resume, progress, device):
    train_idx, test_idx = split_digits(len(sim.digits))

    def batches(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = _data_generator(recipe.seed, step)
        idx = train_idx[torch.randint(len(train_idx), (recipe.batch_size,), generator=g)]
        x, y = colored_digits(sim, idx, g, mixed=True)
        dx, dy = torch.randint(-1, 2, (2,), generator=g).tolist()  # shift the batch by up to one pixel
        return torch.roll(x, (dx, dy), (-2, -1)).to(device), y.to(device)

    def loss_fn(batch, step: int) -> dict[str, torch.Tensor]:
        x, y = batch
        logits = net(x)
        return {"loss": F.cross_entropy(logits, y), "acc": (logits.argmax(-1) == y).float().mean()}

    history = train(
        net, loss_fn, batches, config=tc, checkpoint_dir=ckpt, resume=resume, progress=progress, desc=recipe.name
    )
    with torch.no_grad():
        accs = {}
        for mixed in (False, True):
            x, y = colored_digits(sim, test_idx, torch.Generator().manual_seed(1), mixed=mixed)
            accs["independent_colors" if mixed else "tied_colors"] = float(
                (net(x.to(device)).argmax(-1).cpu() == y).float().mean()
            )
    extra = {
        "kind": "classifier",
        "output": "logits",
        "classes": [str(i) for i in range(recipe.config["num_classes"])],
        "metrics": {
            "held_out_accuracy_tied": accs["tied_colors"],
            "held_out_accuracy_mixed": accs["independent_colors"],
            "held_out_digits": len(test_idx),
        },
    }
    return net, extra, history


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, float) and not math.isfinite(v):
            continue
        if isinstance(v, tuple):
            v = list(v)
        out[k] = v
    return out
