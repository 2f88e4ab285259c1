"""The recipes that train zoo's shipped models (``zoo train prior|subject NAME``).

Every recipe is a frozen :class:`Recipe` (architecture, data source, optimizer settings, seed) plus a training step
of its kind (:mod:`zoo.recipes.trainers`: DDPM prior, autoencoder, classifier) on a named data source
(:mod:`zoo.recipes.data`); training goes through the one shared loop (:func:`zoo.training.train`). The result is a
zoo-format directory whose ``zoo.json`` records the recipe, seed, settings, the exact ``zoo train`` command,
wall-clock time and held-out metrics, so a shipped model can be reproduced bit-for-bit on the same machine and torch
version. Digits are split once by a fixed permutation (seed 0): the last 15% are held out for the reported metrics.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from simulators import Registry
from simulators.devices import check_device
from simulators.writes import check_folder, write_atomic
from zoo.architectures import COLOR_MNIST_UNET, build
from zoo.format import write_zoo_dir
from zoo.recipes.data import HELD_OUT, colored_digits, data_source, split_digits
from zoo.recipes.trainers import TRAINERS
from zoo.training import TrainConfig

__all__ = ["HELD_OUT", "RECIPES", "Recipe", "colored_digits", "get_recipe", "names", "split_digits", "train_recipe"]


@dataclass(frozen=True)
class Recipe:
    """How one shipped model is trained.

    Attributes:
        name: the model name (and registry key).
        role: ``"prior"`` or ``"subject"``.
        kind: ``"ddpm"``, ``"autoencoder"`` or ``"classifier"``.
        architecture: a name from :mod:`zoo.architectures`.
        config: constructor arguments (image size is filled in from the data).
        data: the data source (a name in :data:`zoo.recipes.data.DATA`).
        variant: the data source's variant (color-MNIST: ``"tied"`` or ``"ood"``).
        steps, batch_size, lr, warmup, grad_clip: optimizer settings (Adam, cosine schedule).
        seed: seeds the initialization and the data stream.
        ema: EMA decay of the weights that are saved (DDPM only; 0 disables).
        scheduler: diffusers scheduler config (DDPM only).
        description: one line for ``zoo list --models``.
        options: the trainer's own settings (IB-INN: ``gamma``, ``noise``, ``smoothing``; autoencoder:
            ``channel_contrast``).
    """

    name: str
    role: str
    kind: str
    architecture: str
    config: dict[str, Any]
    data: str = "color-mnist"
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
    options: dict[str, Any] = field(default_factory=dict)


_DDPM_SCHEDULER = {
    "num_train_timesteps": 1000,
    "beta_schedule": "squaredcos_cap_v2",
    "prediction_type": "epsilon",
    "clip_sample": True,
    "clip_sample_range": 1.0,
}

_DDPM = Recipe(
    name="color-mnist-ddpm",
    role="prior",
    kind="ddpm",
    architecture="diffusers.UNet2DModel",
    config=COLOR_MNIST_UNET,
    variant="tied",
    steps=20000,
    batch_size=64,
    lr=1e-3,
    warmup=200,
    ema=0.999,
    scheduler={**_DDPM_SCHEDULER, "prediction_type": "v_prediction"},
    description="DDPM prior of color-MNIST (digit color tied to background; v-prediction)",
)

_IB_INN = Recipe(
    name="color-mnist-ib-inn",
    role="subject",
    kind="ib-inn",
    architecture="zoo.ib-inn",
    config={"input_shape": [3, 16, 16], "classes": 10, "blocks": [2, 4, 4], "hidden": [32, 64, 64]},
    steps=2000,
    batch_size=64,
    lr=1e-3,
    warmup=100,
    grad_clip=8.0,
    options={"gamma": 1.0, "noise": 1e-3, "smoothing": 0.05},
    description="IB-INN generative classifier of colored digits: exact p(x | y), Bayes p(y | x), class fibers",
)
_NFPI_OPTIONS = {"lam": 2.0, "noise": 1e-3, "fpi_every": 20, "fpi_batch": 1024}
_MIXTURE_IB_INN = replace(
    _IB_INN,
    name="gaussian-mixture-ib-inn",
    config={"input_shape": [2], "classes": 4, "blocks": 4, "hidden": 32},
    data="gaussian-mixture",
    variant="some",
    batch_size=256,
    lr=3e-3,
    description="IB-INN classifier of the Gaussian mixture's points (its 4 label classes)",
)

_RECIPES = {
    "color-mnist-ddpm": _DDPM,
    "color-mnist-ood-ddpm": replace(
        _DDPM,
        name="color-mnist-ood-ddpm",
        variant="ood",
        steps=2000,  # the shipped weights: 2000 steps, then --resume to 3500 (their zoo.json records both runs)
        scheduler=_DDPM_SCHEDULER,
        description="DDPM prior of color-MNIST with independent digit and background colors (NDTM w/ OOD)",
    ),
    "color-mnist-ae": Recipe(
        name="color-mnist-ae",
        role="subject",
        kind="autoencoder",
        architecture="zoo.color-mnist-ae",
        config={"channels": 3, "latent_dim": 64, "width": 32},
        steps=6000,
        batch_size=128,
        lr=2e-3,
        warmup=100,
        options={"channel_contrast": 1.5},
        description="encoder(decolorize(x)), trained to tell the channels apart; fibers ~ recolorings",
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
    "color-mnist-ib-inn": _IB_INN,
    "color-mnist-nfpi": replace(
        _IB_INN,
        name="color-mnist-nfpi",
        kind="nfpi",
        config={**_IB_INN.config, "covariance": "diagonal"},
        options=_NFPI_OPTIONS,
        description="NFPI flow classifier of colored digits: diagonal class Gaussians by fixed-point updates",
    ),
    "gaussian-mixture-ib-inn": _MIXTURE_IB_INN,
    "gaussian-mixture-nfpi": replace(
        _MIXTURE_IB_INN,
        name="gaussian-mixture-nfpi",
        kind="nfpi",
        config={**_MIXTURE_IB_INN.config, "covariance": "full"},
        options={**_NFPI_OPTIONS, "lam": 1.0},
        description="NFPI flow classifier of the Gaussian mixture's points: full class Gaussians, fixed-point updates",
    ),
}


RECIPES: Registry[Recipe] = Registry("recipe")
for _name, _recipe in _RECIPES.items():
    RECIPES.register(_name, _recipe)


def names(role: str | None = None) -> list[str]:
    """Names of the recipes (optionally of one role)."""
    return [n for n, r in RECIPES.items() if role is None or r.role == role]


def get_recipe(name: str, role: str | None = None) -> Recipe:
    """The recipe called ``name`` (checked against ``role`` when given)."""
    if name not in RECIPES or (role is not None and RECIPES[name].role != role):
        raise ValueError(f"no {role or 'model'} recipe {name!r}; known: {', '.join(names(role))}")
    return RECIPES[name]


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
    sim = data_source(recipe.data, recipe.variant, data)
    h, w = sim.image_shape if hasattr(sim, "image_shape") else (None, None)
    config = dict(recipe.config)
    if recipe.architecture == "diffusers.UNet2DModel":
        config["sample_size"] = h
    elif recipe.architecture == "zoo.color-mnist-ae":
        config["size"] = h
    elif recipe.architecture == "zoo.ib-inn" and h is not None:
        config["input_shape"] = [3, h, w]
    device = check_device(device)
    net = _init(recipe, config).to(device)
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else out.with_name(out.name + ".ckpt")
    check_folder(ckpt, "checkpoint folder", link_ok=checkpoint_dir is not None)  # OUT.ckpt: never through a link
    check_folder(out.parent, "--out")
    tc = TrainConfig(
        steps=recipe.steps,
        batch_size=recipe.batch_size,
        lr=recipe.lr,
        warmup=recipe.warmup,
        grad_clip=recipe.grad_clip,
        schedule="cosine",
        checkpoint_every=max(50, recipe.steps // 40),
    )
    trainer = TRAINERS[recipe.kind]
    t0 = time.perf_counter()
    module, extra, history = trainer(recipe, sim, net, tc, ckpt, resume, progress, device)
    seconds = time.perf_counter() - t0
    run = {"command": command or _command(name, recipe, out, data), "steps": recipe.steps, "seconds": round(seconds, 1)}
    runs = _record_run(ckpt, run, resume=resume)
    meta: dict[str, Any] = {
        "role": recipe.role,
        "architecture": recipe.architecture,
        "input": {
            "shape": [3, h, w] if h is not None else list(config["input_shape"]),
            **({"range": [0.0, 1.0]} if h is not None else {}),
            "normalization": extra.pop("normalization", {"mean": 0.0, "std": 1.0}),
        },
        **extra,
        "description": recipe.description,
        "trained_on": f"{recipe.data} variant {recipe.variant!r}, "
        + (
            f"MNIST from {str(data)!r}"
            if data is not None
            else f"embedded {h}x{w} digits"
            if h is not None
            else "points drawn from the simulator"
        ),
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
    write_atomic(path, json.dumps(runs, indent=1).encode())
    return runs


def _command(name: str, recipe: Recipe, out: Path, data) -> str:
    cmd = f"zoo train {recipe.role} {name} --out {out} --steps {recipe.steps} --seed {recipe.seed}"
    cmd += f" --batch-size {recipe.batch_size}"
    return cmd + (f" --data {data}" if data is not None else "")
