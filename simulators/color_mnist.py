"""Color-MNIST: a fiber benchmark whose invariances are known exactly (Rousselot et al. 2026, appendix B.1).

For each channel i a value c^i is drawn i.i.d. from the mixture

    c^i ~ 0.6 N(0.7, 0.08^2) + 0.35 N(0.5, 0.015^2) + 0.05 N(0.1, 0.02^2),   clipped to [0, 1],

and a grey digit x in [0, 1] is colored as (eq. 13)

    x_colored,i = (1 - x) c^i + x ((c^i + 0.5) mod 1),

so the background has color c0 = (c^1, c^2, c^3) and the digit (c0 + 0.5) mod 1. ``decolorize`` is the exact
inverse (eq. 15): it reads c^i from the background (the mean of the outer pixel ring, which is pure background
for the embedded digits and for MNIST) and returns x_i = (x_colored,i - c^i) / (((c^i + 0.5) mod 1) - c^i).
Every recoloring of a digit has the same decolorization: the fiber of ``decolorize`` through an image is the set
of its recolorings, distributed as p(c0) — ``fiber_sample`` draws from it exactly, ``color_log_prob`` is log p(c0).

theta = (flattened grey digit, c0), D = H W + 3; x = colored image (3, H, W). Variant ``ood`` draws the digit
color independently of the background (the paper's "NDTM w/ OOD" training data).
"""

from __future__ import annotations

import math
import os

import pyro.distributions as dist
import torch
from pyro.distributions.torch_distribution import TorchDistribution
from torch.distributions import constraints

from simulators.digits import load_digits
from simulators.protocol import check_observation, check_theta

WEIGHTS = (0.6, 0.35, 0.05)
MEANS = (0.7, 0.5, 0.1)
STDS = (0.08, 0.015, 0.02)


def channel_mixture(device=None, dtype=torch.float32) -> dist.MixtureSameFamily:
    """The per-channel color mixture (before clipping)."""
    kw = {"device": device, "dtype": dtype}
    return dist.MixtureSameFamily(
        dist.Categorical(torch.tensor(WEIGHTS, **kw)),
        dist.Normal(torch.tensor(MEANS, **kw), torch.tensor(STDS, **kw)),
    )


def sample_colors(shape: tuple[int, ...], *, generator=None, device=None, dtype=torch.float32) -> torch.Tensor:
    """Background colors c0 ~ p(c0), shape (*shape, 3), clipped to [0, 1]."""
    kw = {"device": device, "dtype": dtype}
    n = math.prod(shape) * 3
    k = torch.multinomial(torch.tensor(WEIGHTS, **kw), n, replacement=True, generator=generator)
    mu, sd = torch.tensor(MEANS, **kw)[k], torch.tensor(STDS, **kw)[k]
    c = mu + sd * torch.randn(n, generator=generator, **kw)
    return c.clamp(0, 1).reshape(*shape, 3)


def color_log_prob(c0: torch.Tensor) -> torch.Tensor:
    """log p(c0) of background colors (*, 3), the density of the unclipped mixture on (0, 1).

    Clipping moves less than 1e-4 of each channel's mass onto the end points 0 and 1 (the 0.7-component lies
    3.75 sd below 1), which this density ignores.
    """
    return channel_mixture(c0.device, c0.dtype).log_prob(c0).sum(-1)


def digit_color(c: torch.Tensor) -> torch.Tensor:
    """The digit color (c + 0.5) mod 1 for background color c."""
    return torch.remainder(c + 0.5, 1.0)


def colorize(x: torch.Tensor, c0: torch.Tensor, c1: torch.Tensor | None = None) -> torch.Tensor:
    """Color grey digits x (*, H, W) with background c0 (*, 3) and digit color c1 (default (c0 + 0.5) mod 1).

    Returns colored images (*, 3, H, W).
    """
    c1 = digit_color(c0) if c1 is None else c1
    x = x.unsqueeze(-3)
    return (1 - x) * c0[..., :, None, None] + x * c1[..., :, None, None]


def background_color(x_colored: torch.Tensor) -> torch.Tensor:
    """The background color of colored images (*, 3, H, W): the mean of the outer pixel ring, shape (*, 3)."""
    top, bottom = x_colored[..., 0, :], x_colored[..., -1, :]
    left, right = x_colored[..., 1:-1, 0], x_colored[..., 1:-1, -1]
    ring = torch.cat((top, bottom, left, right), -1)
    return ring.mean(-1)


def decolorize(x_colored: torch.Tensor) -> torch.Tensor:
    """The exact inverse of :func:`colorize` (eq. 15): colored (*, 3, H, W) -> grey per channel (*, 3, H, W).

    For an image on the color-MNIST manifold all three channels equal the grey digit. Differentiable.
    """
    c = background_color(x_colored)[..., :, None, None]
    return (x_colored - c) / (digit_color(c) - c)


class DigitColorPrior(TorchDistribution):
    """Prior over theta = (flattened grey digit, c0): a uniform draw from the digit set times p(c0).

    The digit part is an empirical distribution, so ``log_prob`` is defined for theta whose digit is one of the
    set's images (log(1/N) + log p(c0)) and is -inf otherwise.
    """

    arg_constraints: dict = {}
    support = constraints.real_vector

    def __init__(self, digits: torch.Tensor, validate_args=None) -> None:
        self.digits = digits.reshape(len(digits), -1)
        super().__init__(torch.Size(), torch.Size([self.digits.shape[1] + 3]), validate_args=validate_args)

    def sample(self, sample_shape=torch.Size(), generator: torch.Generator | None = None) -> torch.Tensor:
        shape = tuple(sample_shape)
        n = math.prod(shape)
        idx = torch.randint(len(self.digits), (n,), generator=generator)
        c = sample_colors((n,), generator=generator)
        return torch.cat((self.digits[idx], c), -1).reshape(*shape, -1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        img, c0 = value[..., :-3], value[..., -3:]
        match = (img.unsqueeze(-2) == self.digits.to(value)).all(-1).any(-1)
        lp = color_log_prob(c0) - math.log(len(self.digits))
        return torch.where(match, lp, torch.full_like(lp, -math.inf))


class ColorMNIST:
    """Colored digits with background color c0 ~ p(c0) and digit color (c0 + 0.5) mod 1.

    Arguments:
        variant: ``"tied"`` (default; digit color determined by the background) or ``"ood"`` (digit color drawn
            independently from the same marginal).
        data: ``None`` for the embedded 16x16 digits, or a local MNIST IDX / NPZ path for real 28x28 MNIST.

    Example:
        >>> import torch, simulators
        >>> cm = simulators.get("color-mnist")
        >>> g = torch.Generator().manual_seed(0)
        >>> x = cm.simulate(cm.prior.sample((4,), generator=g))
        >>> x.shape
        torch.Size([4, 3, 16, 16])
    """

    name = "color-mnist"

    def __init__(self, *, variant: str = "tied", data: str | os.PathLike | None = None) -> None:
        if variant not in ("tied", "ood"):
            raise ValueError(f"variant must be 'tied' or 'ood', got {variant!r}")
        self.variant = variant
        self.options = {"variant": variant, "data": None if data is None else str(data)}
        self.digits, self.labels = load_digits(data)
        h, w = self.digits.shape[-2:]
        self.image_shape = (h, w)
        self.obs_shape = (3, h, w)
        self.param_names = tuple(f"pixel{i}" for i in range(h * w)) + ("c_r", "c_g", "c_b")
        self.prior = DigitColorPrior(self.digits)

    def split(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """theta (*, HW + 3) -> grey digit (*, H, W) and background color (*, 3)."""
        return theta[..., :-3].reshape(*theta.shape[:-1], *self.image_shape), theta[..., -3:]

    def simulate(self, theta: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Colored images: (*, HW + 3) -> (*, 3, H, W)."""
        theta = check_theta(theta, len(self.param_names))
        img, c0 = self.split(theta)
        c1 = None
        if self.variant == "ood":
            c1 = digit_color(sample_colors(tuple(c0.shape[:-1]), generator=generator, device=c0.device, dtype=c0.dtype))
        return colorize(img, c0, c1)

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """n colored images drawn from the simulator's data distribution, shape (n, 3, H, W)."""
        return self.simulate(self.prior.sample((n,), generator=generator), generator=generator)

    def reference_posterior(
        self, x_o: torch.Tensor, n: int, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """The posterior of theta is a point mass (the map is invertible): n copies, shape (n, *batch, HW + 3)."""
        x_o = check_observation(x_o, self.obs_shape)
        grey = decolorize(x_o).mean(-3)
        theta = torch.cat((grey.flatten(-2), background_color(x_o)), -1)
        return theta.expand(n, *theta.shape)

    def fiber_sample(self, x: torch.Tensor, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Exact samples of the fiber of ``decolorize`` through x: n recolorings, shape (n, *batch, 3, H, W)."""
        x = check_observation(x, self.obs_shape)
        grey = decolorize(x).mean(-3)
        c0 = sample_colors((n, *x.shape[:-3]), generator=generator, device=x.device, dtype=x.dtype)
        return colorize(grey.expand(n, *grey.shape), c0)
