"""The network architectures zoo knows how to rebuild from a saved config, by name.

A zoo-format directory names its architecture in ``zoo.json`` and stores the constructor arguments in
``config.json``; :func:`build` turns the pair back into a module (before its weights are loaded). Nothing here is
read from a pickle: an architecture is code in this file (or in diffusers / normflows), and its config is JSON.

Architectures:
    ``diffusers.UNet2DModel``: the diffusers UNet (config = its ``config.json``).
    ``zoo.digits-cnn``: :class:`DigitsCNN`, a small convolutional classifier.
    ``zoo.color-mnist-ae``: :class:`ColorMNISTAutoencoder`, encoder(decolorize(x)) with its decoder.
    ``zoo.realnvp``: a RealNVP normalizing flow on vectors (normflows), see :func:`realnvp`.
    ``zoo.ib-inn``: an IB-INN generative classifier (:mod:`zoo.generative`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from simulators.color_mnist import decolorize

# The shipped color-MNIST UNet: three resolutions (16, 8, 4), attention only at 4x4, ~0.3 M parameters. Small
# enough to train on two heavily shared CPU cores in about an hour (see zoo/recipes.py).
COLOR_MNIST_UNET: dict[str, Any] = {
    "sample_size": 16,
    "in_channels": 3,
    "out_channels": 3,
    "block_out_channels": [16, 32, 32],
    "layers_per_block": 1,
    "down_block_types": ["DownBlock2D", "DownBlock2D", "AttnDownBlock2D"],
    "up_block_types": ["AttnUpBlock2D", "UpBlock2D", "UpBlock2D"],
    "norm_num_groups": 8,
    "attention_head_dim": 16,
}


class DigitsCNN(nn.Module):
    """A small convolutional classifier for (3, H, W) images (two conv stages with max pooling, two linear layers).

    Arguments:
        in_channels: image channels.
        num_classes: number of classes.
        width: channels of the first conv stage (the second has twice as many).
        embed_dim: size of the penultimate embedding (the ``embedding`` layer).

    Shapes: x (B, in_channels, H, W) -> logits (B, num_classes).
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10, width: int = 16, embed_dim: int = 64) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(w, w, 3, padding=1),
            nn.SiLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1),
            nn.SiLU(),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(4),  # the identity for 16x16 inputs; 28x28 MNIST (7x7 here) is pooled to 4x4
            nn.Flatten(),
        )
        self.embedding = nn.Sequential(nn.Linear(32 * w, embed_dim), nn.SiLU())
        self.head = nn.Linear(embed_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embedding(self.features(x)))


class ColorMNISTAutoencoder(nn.Module):
    """The color-MNIST subject of Rousselot et al. (2026, app. B.1): phi(x) = encoder(decolorize(x)).

    ``decolorize`` (eq. 15) maps every recoloring of a digit to the same grey image (one copy per channel), so the
    fiber of phi through x contains the recolorings of x — the exact fiber, that of ``decolorize`` itself. The
    shipped weights (recipe ``color-mnist-ae``) were trained to reconstruct decolorized digits whose channels, for
    half of each batch, carry independent random contrasts and signs, so the encoder tells the three channels
    apart: its fiber near the data is close to the exact one. Measured (``channel_sensitivity``, medians over the
    270 held-out digits; subject loss / decolorize loss): a recoloring 0 / 0, one channel's contrast x0.8
    1.69 / 1.19, x0.5 9.6 / 7.5, a flat channel 32.6 / 29.8, an inverted one 106 / 119, the nearest other digit
    11.0 / 5.9 — every change off the recolorings is underrated by at most 2.1x relative to ``decolorize``
    (``channel_blindness``; wave 1's encoder, trained on tied channels only, 3.6x: contrast x0.8 cost it 1.6 against
    28 for the nearest digit). Like any 64-dim code it cannot see most directions far from the digits: fine
    texture and noise that a prior leaves in its samples.

    Arguments:
        channels: image channels (3).
        size: image side H = W (divisible by 4).
        latent_dim: size of the code h (the paper uses 54 for 28x28 MNIST).
        width: channels of the first conv stage.

    Shapes: ``forward``/``encode``: colored x (B, 3, H, W) -> h (B, latent_dim); ``decode``: h -> grey per
    channel (B, 3, H, W); ``encode_grey``: grey (B, 3, H, W) -> h.
    """

    def __init__(self, channels: int = 3, size: int = 16, latent_dim: int = 54, width: int = 32) -> None:
        super().__init__()
        if size % 4:
            raise ValueError(f"size must be divisible by 4, got {size}")
        self.shape = (channels, size, size)
        s, w = size // 4, width
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, w, 3, padding=1),
            nn.SiLU(),
            nn.Conv2d(w, 2 * w, 4, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(2 * w, 2 * w, 4, stride=2, padding=1),
            nn.SiLU(),
            nn.Flatten(),
            nn.Linear(2 * w * s * s, latent_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 2 * w * s * s),
            nn.SiLU(),
            nn.Unflatten(1, (2 * w, s, s)),
            nn.ConvTranspose2d(2 * w, 2 * w, 4, stride=2, padding=1),
            nn.SiLU(),
            nn.ConvTranspose2d(2 * w, w, 4, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(w, channels, 3, padding=1),
        )

    def encode_grey(self, grey: torch.Tensor) -> torch.Tensor:
        return self.encoder(grey)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(decolorize(x))

    def decode(self, h: torch.Tensor) -> torch.Tensor:
        return self.decoder(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)


def realnvp(dim: int = 2, num_layers: int = 8, hidden: int = 64) -> nn.Module:
    """A RealNVP flow on R^dim (normflows): alternating affine coupling blocks over a standard normal base.

    Arguments:
        dim: data dimension (>= 2).
        num_layers: number of coupling blocks.
        hidden: width of the coupling MLPs.

    Returns:
        a ``normflows.NormalizingFlow`` with ``log_prob(x)`` for x (B, dim).
    """
    import normflows as nf

    if dim < 2:
        raise ValueError(f"realnvp needs dim >= 2, got {dim}")
    flows = []
    for _ in range(num_layers):
        # the coupling keeps the first ceil(dim / 2) values and maps the other floor(dim / 2) with a shift and a scale
        param_map = nf.nets.MLP([(dim + 1) // 2, hidden, hidden, 2 * (dim // 2)], init_zeros=True)
        flows.append(nf.flows.AffineCouplingBlock(param_map))
        flows.append(nf.flows.Permute(dim, mode="swap"))
    return nf.NormalizingFlow(nf.distributions.DiagGaussian(dim, trainable=False), flows)


def _unet(**config: Any) -> nn.Module:
    from diffusers import UNet2DModel

    return UNet2DModel.from_config(config)


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "diffusers.UNet2DModel": _unet,
    "zoo.digits-cnn": DigitsCNN,
    "zoo.color-mnist-ae": ColorMNISTAutoencoder,
    "zoo.realnvp": realnvp,
    "zoo.ib-inn": lambda **config: _ib_inn(**config),
}


def _ib_inn(**config: Any) -> nn.Module:
    from zoo.generative import build_ib_inn  # imports normflows

    return build_ib_inn(**config)


def build(architecture: str, config: dict[str, Any]) -> nn.Module:
    """Rebuild an untrained module from its architecture name and constructor config.

    Raises:
        ValueError: the architecture is not one zoo knows.
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; known: {', '.join(sorted(ARCHITECTURES))}")
    config = {k: v for k, v in config.items() if not k.startswith("_")}
    return ARCHITECTURES[architecture](**config)
