"""The training steps of the shipped models' recipes: one function per kind (DDPM prior, autoencoder, classifier).

Each takes the recipe, its data source, the network, the :class:`zoo.training.TrainConfig`, the checkpoint folder and
settings, and returns ``(module to save, extra zoo.json metadata, history)``. All of them train through the one loop,
:func:`zoo.training.train`.

Objectives:
    DDPM prior (Ho et al. 2020): E_{x0, t, eps} || eps_theta(x_t, t) - eps ||^2, x_t = sqrt(abar_t) x0 +
        sqrt(1 - abar_t) eps, x0 the colored image mapped to [-1, 1]; with the scheduler's prediction_type
        "v_prediction" (Salimans & Ho 2022) the target is v = sqrt(abar_t) eps - sqrt(1 - abar_t) x0 instead, whose
        x0 estimate does not amplify the network's error by 1 / sqrt(abar_t) at high noise; sampling uses an
        exponential moving average (EMA) of the weights.
    color-MNIST autoencoder: || dec(enc(g)) - g ||^2 for g = decolorize(x) of random recolorings x; with the
        recipe option ``channel_contrast`` c > 0, each channel of g is first multiplied by an independent factor
        s u, s = +-1, u ~ U(0, c), for half of the batch (the other half stays tied), so that the encoder must tell
        the channels apart: its fiber shrinks to the recolorings.
    digits classifier: cross-entropy of colored digits (tied and independent colors, shifted by up to 1 pixel).
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from simulators.color_mnist import decolorize
from zoo.format import jsonable
from zoo.recipes.data import colored_digits, data_generator, labelled_points, split_digits
from zoo.training import train


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


def train_ddpm(recipe, sim, net, tc, ckpt, resume, progress, device):
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler.from_config(recipe.scheduler)
    abar = scheduler.alphas_cumprod.to(device)
    T = scheduler.config.num_train_timesteps
    if scheduler.config.prediction_type not in ("epsilon", "v_prediction"):
        raise ValueError(f"DDPM recipes train 'epsilon' or 'v_prediction', got {scheduler.config.prediction_type!r}")
    v_target = scheduler.config.prediction_type == "v_prediction"
    model = EMA(net, recipe.ema)

    def batches(step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        g = data_generator(recipe.seed, step)
        x0 = sim.sample(recipe.batch_size, generator=g) * 2 - 1  # [0, 1] -> [-1, 1]
        t = torch.randint(0, T, (recipe.batch_size,), generator=g)
        eps = torch.randn(x0.shape, generator=g)
        return x0.to(device), t.to(device), eps.to(device)

    def loss_fn(batch, step: int) -> dict[str, torch.Tensor]:
        model.update()  # average in the previous optimizer step
        x0, t, eps = batch
        a = abar[t].view(-1, 1, 1, 1)
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
        target = a.sqrt() * eps - (1 - a).sqrt() * x0 if v_target else eps
        return {"loss": F.mse_loss(net(x_t, t).sample, target)}

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
        "scheduler": {"class": "DDPMScheduler", "config": jsonable(dict(scheduler.config))},
        "normalization": {"mean": 0.5, "std": 0.5},
        "ema_decay": recipe.ema,
    }
    return model.ema, extra, history


def channel_contrasts(n: int, channels: int, c: float, g: torch.Generator) -> torch.Tensor:
    """Per-channel factors (n, channels, 1, 1): 1 for the first half, s u (s = +-1, u ~ U(0, c)) for the rest."""
    u = torch.rand(n, channels, generator=g) * c
    s = torch.randint(0, 2, (n, channels), generator=g) * 2 - 1
    factors = torch.where(torch.arange(n)[:, None] < n // 2, torch.ones(n, channels), s * u)
    return factors[..., None, None]


def train_autoencoder(recipe, sim, net, tc, ckpt, resume, progress, device):
    train_idx, test_idx = split_digits(len(sim.digits))
    contrast = float(recipe.options.get("channel_contrast", 0.0))

    def batches(step: int) -> torch.Tensor:
        g = data_generator(recipe.seed, step)
        idx = train_idx[torch.randint(len(train_idx), (recipe.batch_size,), generator=g)]
        x, _ = colored_digits(sim, idx, g, mixed=False)
        grey = decolorize(x)
        if contrast > 0:
            grey = grey * channel_contrasts(len(grey), grey.shape[1], contrast, g)
        return grey.to(device)

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


def train_classifier(recipe, sim, net, tc, ckpt, resume, progress, device):
    train_idx, test_idx = split_digits(len(sim.digits))

    def batches(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = data_generator(recipe.seed, step)
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


def train_generative(recipe, sim, net, tc, ckpt, resume, progress, device):
    """IB-INN (kind ``ib-inn``: the rebalanced IB loss) or NFPI (kind ``nfpi``: L_NF by gradient, the class Gaussians
    by fixed-point updates every ``fpi_every`` steps) on tied-colour digits or on the Gaussian mixture's points."""
    from zoo.generative import ib_loss, nfpi_loss

    images = hasattr(sim, "digits")
    nfpi = recipe.kind == "nfpi"
    defaults = {"lam": 0.0, "noise": 1e-3, "fpi_every": 20, "fpi_batch": 1024} if nfpi else {}
    opts = {**({"gamma": 1.0, "noise": 1e-3, "smoothing": 0.05} if not nfpi else defaults), **recipe.options}
    if images:
        train_idx, test_idx = split_digits(len(sim.digits))

    def draw(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if images:
            idx = train_idx[torch.randint(len(train_idx), (n,), generator=g)]
            return colored_digits(sim, idx, g, mixed=False)
        return labelled_points(sim, n, g)

    def fpi(step: int) -> None:
        x, y = draw(opts["fpi_batch"], data_generator(recipe.seed + 7919, step))
        net.update_class_gaussians(x.to(device), y, lam=opts["lam"] if step else 0.0)

    if nfpi:
        net.mu.requires_grad_(False)

    def batches(step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Generator]:
        g = data_generator(recipe.seed, step)
        x, y = draw(recipe.batch_size, g)
        return x.to(device), y.to(device), g

    def loss_fn(batch, step: int) -> dict[str, torch.Tensor]:
        x, y, g = batch
        if nfpi:
            if step % opts["fpi_every"] == 0:
                fpi(step)
            return nfpi_loss(net, x, y, noise=opts["noise"], generator=g)
        return ib_loss(net, x, y, generator=g, **opts)

    params = [p for p in net.parameters() if p.requires_grad]
    history = train(
        net,
        loss_fn,
        batches,
        config=tc,
        checkpoint_dir=ckpt,
        resume=resume,
        progress=progress,
        desc=recipe.name,
        params=params,
    )
    with torch.no_grad():
        if images:
            x, y = colored_digits(sim, test_idx, torch.Generator().manual_seed(1), mixed=False)
        else:
            x, y = labelled_points(sim, 2000, torch.Generator().manual_seed(1))
        x = x.to(device)
        metrics = {"held_out_accuracy": float((net.logits(x).argmax(-1).cpu() == y).float().mean())}
        metrics["held_out_nll_per_dim"] = float(-net.log_prob(x).mean() / x[0].numel())
        if images:
            metrics["held_out_accuracy_tied"] = metrics.pop("held_out_accuracy")
            metrics["held_out_bits_per_dim"] = metrics.pop("held_out_nll_per_dim") / math.log(2)
            metrics["held_out_digits"] = len(test_idx)
    extra = {
        "kind": "classifier",
        "output": "logits",
        "generative": True,
        "classes": [str(i) for i in range(recipe.config["classes"])],
        "ib" if not nfpi else "nfpi": opts,
        "metrics": metrics,
    }
    return net, extra, history


TRAINERS = {
    "ddpm": train_ddpm,
    "autoencoder": train_autoencoder,
    "classifier": train_classifier,
    "ib-inn": train_generative,
    "nfpi": train_generative,
}
