"""The 8-mode Gaussian mixture toy of the Ardizzone thesis, section 4.2.1.

theta is a 2-D point from a mixture of eight isotropic Gaussians N(mu_k, 0.2^2 I) with equal weights, the means
on a regular octagon (1 + sqrt(2) = 2.4142), listed clockwise from the upper left. x is the one-hot label
(8 entries) of the mode that generated theta, passed through a label map:

- ``some`` = [0, 0, 0, 0, 1, 1, 2, 3] (default): four labels, the first four modes share one;
- ``all`` = [0, ..., 7]: one label per mode;
- ``none``: a single label, x carries no information.

Given only theta, the generating mode is latent, so ``simulate`` draws the label from the mode
responsibilities p(k | theta): the forward model is the exact conditional p(x | theta). The posterior
p(theta | label) is the equal-weight mixture of the label's modes, available exactly (``reference_posterior``,
``posterior_log_prob``).
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch

from simulators.protocol import check_observation, check_theta

_A = 1.0 + math.sqrt(2.0)  # 2.4142...
MEANS = (
    (-_A, 1.0),
    (-1.0, _A),
    (1.0, _A),
    (_A, 1.0),
    (_A, -1.0),
    (1.0, -_A),
    (-1.0, -_A),
    (-_A, -1.0),
)
STD = 0.2
LABEL_MAPS = {"some": (0, 0, 0, 0, 1, 1, 2, 3), "all": tuple(range(8)), "none": (0,) * 8}


class GaussianMixture:
    """Eight-mode octagon mixture with one-hot labels.

    Arguments:
        labels: label map name, ``"some"`` (default), ``"all"`` or ``"none"``.

    Example:
        >>> import torch, simulators
        >>> gm = simulators.get("gaussian-mixture")
        >>> x = torch.nn.functional.one_hot(torch.tensor(1), 8).float()  # label 1: modes 5 and 6
        >>> gm.reference_posterior(x, 1000, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([1000, 2])
    """

    name = "gaussian-mixture"
    param_names = ("x1", "x2")
    obs_shape = (8,)
    observation_names = tuple(f"label{k}" for k in range(8))

    def __init__(self, *, labels: str = "some") -> None:
        if labels not in LABEL_MAPS:
            raise ValueError(f"labels must be one of {', '.join(LABEL_MAPS)}, got {labels!r}")
        self.labels = labels
        self.options = {"labels": labels}
        self.label_map = torch.tensor(LABEL_MAPS[labels])
        self.means = torch.tensor(MEANS)
        self.std = STD
        mix = dist.Categorical(torch.full((8,), 1 / 8))
        comp = dist.Normal(self.means, STD).to_event(1)
        self.prior = dist.MixtureSameFamily(mix, comp)
        self.n_labels = len(set(LABEL_MAPS[labels]))

    def responsibilities(self, theta: torch.Tensor) -> torch.Tensor:
        """p(mode k | theta), shape (*, 8)."""
        means = self.means.to(theta)
        d2 = ((theta.unsqueeze(-2) - means) ** 2).sum(-1)
        return torch.softmax(-0.5 * d2 / STD**2, -1)

    def simulate(self, theta: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """One-hot labels x ~ p(x | theta): (*, 2) -> (*, 8)."""
        theta = check_theta(theta, 2)
        r = self.responsibilities(theta).reshape(-1, 8)
        k = torch.multinomial(r, 1, generator=generator).squeeze(-1)
        label = self.label_map.to(theta.device)[k]
        x = torch.nn.functional.one_hot(label, 8).to(theta.dtype)
        return x.reshape(*theta.shape[:-1], 8)

    def log_likelihood(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x | theta) for one-hot x: (*, 2), (*, 8) -> (*)."""
        theta = check_theta(theta, 2)
        means = self.means.to(theta)
        log_r = torch.log_softmax(-0.5 * ((theta.unsqueeze(-2) - means) ** 2).sum(-1) / STD**2, -1)
        in_label = self._modes_of(x)
        # log-sum-exp over the label's modes: finite far from the data, also in float32
        return torch.logsumexp(torch.where(in_label, log_r, torch.full_like(log_r, -math.inf)), -1)

    def _modes_of(self, x: torch.Tensor) -> torch.Tensor:
        """Mask (*, 8) of the modes whose label is x's label."""
        label = x.argmax(-1, keepdim=True)
        return self.label_map.to(x.device) == label

    def posterior_log_prob(self, theta: torch.Tensor, x_o: torch.Tensor) -> torch.Tensor:
        """Exact log p(theta | x_o): equal-weight mixture of the label's modes. (*, 2), (*, 8) -> (*)."""
        theta = check_theta(theta, 2)
        mask = self._modes_of(check_observation(x_o, (8,)))
        comp = dist.Normal(self.means.to(theta), STD).to_event(1).log_prob(theta.unsqueeze(-2))
        logw = torch.where(mask, 0.0, -math.inf) - torch.log(mask.sum(-1, keepdim=True).to(theta))
        return torch.logsumexp(comp + logw, -1)

    def reference_posterior(
        self, x_o: torch.Tensor, n: int, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Exact posterior samples for one-hot x_o (*batch, 8); returns (n, *batch, 2)."""
        x_o = check_observation(x_o, (8,))
        mask = self._modes_of(x_o).reshape(-1, 8).to(x_o.dtype)
        k = torch.multinomial(mask, n, replacement=True, generator=generator).T  # (n, B)
        mu = self.means.to(x_o)[k]
        eps = torch.randn(mu.shape, generator=generator, device=x_o.device, dtype=x_o.dtype)
        return (mu + STD * eps).reshape(n, *x_o.shape[:-1], 2)
