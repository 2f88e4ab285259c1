"""The training steps of the shipped models' recipes: one function per kind (DDPM prior, autoencoder, classifier).

Each takes the recipe, its data source, the network, the :class:`zoo.training.TrainConfig`, the checkpoint folder and
settings, and returns ``(module to save, extra zoo.json metadata, history)``. All of them train through the one loop,
:func:`zoo.training.train`.

Objectives:
    DDPM prior (Ho et al. 2020): E_{x0, t, eps} || eps_theta(sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, t) - eps ||^2,
        x0 the colored image mapped to [-1, 1]; sampling uses an exponential moving average (EMA) of the weights.
    color-MNIST autoencoder: || dec(enc(decolorize(x))) - decolorize(x) ||^2 over random recolorings x.
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
from zoo.recipes.data import colored_digits, data_generator, split_digits
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
        "scheduler": {"class": "DDPMScheduler", "config": jsonable(dict(scheduler.config))},
        "normalization": {"mean": 0.5, "std": 0.5},
        "ema_decay": recipe.ema,
    }
    return model.ema, extra, history


def train_autoencoder(recipe, sim, net, tc, ckpt, resume, progress, device):
    train_idx, test_idx = split_digits(len(sim.digits))

    def batches(step: int) -> torch.Tensor:
        g = data_generator(recipe.seed, step)
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


def train_ib_inn(recipe, sim, net, tc, ckpt, resume, progress, device):
    """The IB-INN on tied-colour digits (its log p(x) is then a density of the tied data): the rebalanced IB loss."""
    from zoo.generative import ib_loss

    train_idx, test_idx = split_digits(len(sim.digits))
    opts = {"gamma": 1.0, "noise": 1e-3, "smoothing": 0.05, **recipe.options}

    def batches(step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Generator]:
        g = data_generator(recipe.seed, step)
        idx = train_idx[torch.randint(len(train_idx), (recipe.batch_size,), generator=g)]
        x, y = colored_digits(sim, idx, g, mixed=False)
        return x.to(device), y.to(device), g

    def loss_fn(batch, step: int) -> dict[str, torch.Tensor]:
        x, y, g = batch
        return ib_loss(net, x, y, generator=g, **opts)

    history = train(
        net, loss_fn, batches, config=tc, checkpoint_dir=ckpt, resume=resume, progress=progress, desc=recipe.name
    )
    with torch.no_grad():
        x, y = colored_digits(sim, test_idx, torch.Generator().manual_seed(1), mixed=False)
        x = x.to(device)
        acc = float((net.logits(x).argmax(-1).cpu() == y).float().mean())
        bpd = float(-net.log_prob(x).mean() / (x[0].numel() * math.log(2)))
    extra = {
        "kind": "classifier",
        "output": "logits",
        "generative": True,
        "classes": [str(i) for i in range(recipe.config["classes"])],
        "ib": opts,
        "metrics": {"held_out_accuracy_tied": acc, "held_out_bits_per_dim": bpd, "held_out_digits": len(test_idx)},
    }
    return net, extra, history


TRAINERS = {
    "ddpm": train_ddpm,
    "autoencoder": train_autoencoder,
    "classifier": train_classifier,
    "ib-inn": train_ib_inn,
}
