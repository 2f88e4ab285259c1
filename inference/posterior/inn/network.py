"""The network of the inverse INN: ``[z, pad, x] = f([theta, pad])``, with standardization buffers.

zoo's names: ``theta`` the parameters (width D), ``x`` the observation (width M), ``z`` the latent (width K). The
thesis writes x for the parameters and y for the observation; the loss terms keep its names (see
:mod:`inference.posterior.inn.loss`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from inference.networks.coupling import CouplingFlow
from inference.posterior.simulations import standardization
from inference.posterior.support import SupportTransform

_CHUNK = 1 << 16  # rows per backward pass when sampling


class InverseINN(nn.Module):
    """The invertible network ``[z, pad, x] = f([theta, pad])`` with standardization buffers.

    Arguments:
        dim_theta: parameter width D.
        dim_x: observation width M.
        dim_z: latent width K.
        dim_total: nominal width (>= D and >= M + K).
        blocks, hidden, layers, clamp, activation: the coupling flow (see
            :class:`inference.networks.coupling.CouplingFlow`).
        seed: seed of the fixed permutations.
        labels: ``x`` is label-valued (probability vectors): the network's ``x`` slot holds :func:`label_logits`
            instead of standardized ``x`` (the cross-entropy option of :class:`~inference.posterior.inn.INNLoss`).
        label_smoothing: smoothing ``eps`` of :func:`label_logits` (used only with ``labels``).

    Example:
        >>> import torch
        >>> net = InverseINN(4, 2, 2, 4, blocks=2, hidden=16)
        >>> net.sample(torch.zeros(3, 2), 5).shape
        torch.Size([5, 3, 4])

    References:
        Ardizzone, Kruse, Wirkkala, Rahner, Pellegrini, Klessen, Maier-Hein, Rother, Köthe (2019), "Analyzing
        inverse problems with invertible neural networks", ICLR; Ardizzone, PhD thesis (Heidelberg), ch. 4.
    """

    def __init__(
        self,
        dim_theta: int,
        dim_x: int,
        dim_z: int,
        dim_total: int,
        *,
        blocks: int = 4,
        hidden: int = 128,
        layers: int = 2,
        clamp: float = 2.0,
        activation: str = "relu",
        seed: int = 0,
        labels: bool = False,
        label_smoothing: float = 0.05,
        support: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if labels and not 0.0 < label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in (0, 1), got {label_smoothing}")
        if min(dim_theta, dim_x) < 1 or dim_z < 0:
            raise ValueError(f"need dim_theta >= 1, dim_x >= 1, dim_z >= 0, got {dim_theta}, {dim_x}, {dim_z}")
        least = max(dim_theta, dim_x + dim_z, 2)
        if dim_total < least:
            raise ValueError(f"dim_total must be >= max(dim_theta, dim_x + dim_z, 2) = {least}, got {dim_total}")
        self._config = {
            "dim_theta": dim_theta,
            "dim_x": dim_x,
            "dim_z": dim_z,
            "dim_total": dim_total,
            "blocks": blocks,
            "hidden": hidden,
            "layers": layers,
            "clamp": clamp,
            "activation": activation,
            "seed": seed,
        }
        if labels:  # only written when used, so that configs of real-valued networks stay as they were
            self._config.update(labels=True, label_smoothing=label_smoothing)
        if support:  # a constrained prior: the network models u = t^{-1}(theta) (inference.posterior.support)
            self._config["support"] = dict(support)
        self.support = SupportTransform.from_config(support, dim_theta)
        self.labels, self.label_smoothing = bool(labels), float(label_smoothing)
        self.dim_theta, self.dim_x, self.dim_z, self.dim_total = dim_theta, dim_x, dim_z, dim_total
        self.pad_theta = dim_total - dim_theta
        self.pad_out = dim_total - dim_x - dim_z
        self.flow = CouplingFlow(
            dim_total, blocks=blocks, hidden=hidden, layers=layers, clamp=clamp, activation=activation, seed=seed
        )
        self.register_buffer("theta_mean", torch.zeros(dim_theta))
        self.register_buffer("theta_std", torch.ones(dim_theta))
        self.register_buffer("x_mean", torch.zeros(dim_x))
        self.register_buffer("x_std", torch.ones(dim_x))

    def config(self) -> dict[str, Any]:
        """The constructor arguments (saved as JSON next to the weights)."""
        return dict(self._config)

    def set_standardization(self, theta: torch.Tensor, x: torch.Tensor) -> None:
        """Set mean / std buffers from pilot samples theta (n, D) and x (n, M); near-constant columns keep (0, 1).

        Label-valued ``x`` (``labels=True``) keeps mean 0 / std 1: it enters the network as :func:`label_logits`.
        """
        with torch.no_grad():
            for name, v in (("theta", self.support.inverse(theta)), ("x", x)):
                if name == "x" and self.labels:
                    continue
                mean, std = standardization(v)
                getattr(self, f"{name}_mean").copy_(mean)
                getattr(self, f"{name}_std").copy_(std)

    def standardize(self, theta: torch.Tensor | None, x: torch.Tensor | None):
        """Raw -> network units for ``theta`` (*, D) and ``x`` (*, M) (either may be ``None``).

        ``theta`` and real-valued ``x`` are standardized; label-valued ``x`` becomes :func:`label_logits`.
        """
        ts = None if theta is None else (self.support.inverse(theta) - self.theta_mean) / self.theta_std
        if x is None:
            xs = None
        elif self.labels:
            xs = label_logits(x, self.label_smoothing)
        else:
            xs = (x - self.x_mean) / self.x_std
        return ts, xs

    def split(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Split a network output (*, dim_total) into ``z`` (*, K), ``pad`` (*, dim_total - M - K), ``x`` (*, M)."""
        k, m = self.dim_z, self.dim_x
        return out[..., :k], out[..., k : self.dim_total - m], out[..., self.dim_total - m :]

    def forward(self, theta_in: torch.Tensor) -> torch.Tensor:
        """``f``: padded standardized parameters (*, dim_total) -> ``[z, pad, x]`` (*, dim_total)."""
        return self.flow(theta_in)[0]

    def inverse(self, out: torch.Tensor) -> torch.Tensor:
        """``g = f^{-1}``: ``[z, pad, x]`` (*, dim_total) -> padded standardized parameters (*, dim_total)."""
        return self.flow.inverse(out)[0]

    @torch.no_grad()
    def sample(self, x: torch.Tensor, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Posterior draws ``g(x, z)``, ``z ~ N(0, I)``, pad 0, in raw units.

        Arguments:
            x: raw observations, shape (*batch, M), on the network's device.
            n: draws per observation.
            generator: source of ``z``.

        Returns:
            samples of shape (n, *batch, D).
        """
        batch = x.shape[:-1]
        _, xs = self.standardize(None, x.reshape(-1, self.dim_x))
        b = xs.shape[0]
        gdev = generator.device if generator is not None else xs.device
        z = torch.randn(n, b, self.dim_z, generator=generator, device=gdev, dtype=xs.dtype).to(xs.device)
        out = torch.cat((z, xs.new_zeros(n, b, self.pad_out), xs.expand(n, b, self.dim_x)), -1)
        out = out.reshape(n * b, self.dim_total)
        theta = torch.cat([self.inverse(chunk)[:, : self.dim_theta] for chunk in out.split(_CHUNK)])
        theta = self.unstandardize(theta)
        return theta.reshape(n, *batch, self.dim_theta)

    def unstandardize(self, ts: torch.Tensor) -> torch.Tensor:
        """Network units -> raw parameters (through the support transform of a constrained prior)."""
        return self.support(ts * self.theta_std + self.theta_mean)


def label_logits(x: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Centred log-probabilities ``u(x) = log x~ - mean_k log x~`` of smoothed labels ``x~ = (1 - eps) x + eps / M``.

    The network units of label-valued observations (cross-entropy option): ``softmax(u(x)) = x~`` exactly and
    ``mean_k u(x) = 0``, so ``u`` is a bijection from smoothed labels to centred logits.

    Arguments:
        x: probability vectors (e.g. one-hot labels), shape (*, M).
        smoothing: ``eps`` in (0, 1).

    Returns:
        shape (*, M).

    Example:
        >>> u = label_logits(torch.tensor([0.0, 1.0]), 0.1)
        >>> torch.softmax(u, -1)
        tensor([0.0500, 0.9500])
    """
    p = (1.0 - smoothing) * x + smoothing / x.shape[-1]
    log_p = torch.log(p)
    return log_p - log_p.mean(-1, keepdim=True)


def check_labels(x: torch.Tensor, name: str = "observation") -> None:
    """Raise a one-line ``ValueError`` unless every row of ``x`` (*, M) is a probability vector (to 1e-4)."""
    if (
        not bool(torch.isfinite(x).all())
        or bool((x < 0).any())
        or not torch.allclose(x.sum(-1), torch.ones((), dtype=x.dtype, device=x.device), atol=1e-4, rtol=0)
    ):
        raise ValueError(
            f"this inverse INN was trained with y_loss='cross_entropy': each {name} must be a probability vector "
            "(entries >= 0 summing to 1, e.g. a one-hot label)"
        )


def upgrade_legacy(config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    """Read a network saved before zoo used theta / x names (``dim_x`` for parameters, ``dim_y`` for observations).

    Returns the config and state dict in today's names; a current network is returned unchanged.
    """
    if "dim_y" not in config:
        return config, tensors
    config = dict(config)
    config["dim_theta"], config["dim_x"] = config.pop("dim_x"), config.pop("dim_y")
    names = {"x_mean": "theta_mean", "x_std": "theta_std", "y_mean": "x_mean", "y_std": "x_std"}
    return config, {names.get(k, k): v for k, v in tensors.items()}
