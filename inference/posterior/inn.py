"""Inverse INN trained bidirectionally with MMD (Ardizzone et al. 2019; Ardizzone thesis, ch. 4).

An invertible network learns the well-posed forward process and yields the ill-posed inverse for free. With
parameters ``x`` (the simulator's theta, dim D), observations ``y`` (dim M) and latent variables ``z ~ N(0, I)``
(dim K, by default D - M: the part of ``x`` that ``y`` does not determine)::

    [y, z] = f(x)            x = g(y, z) = f^{-1}(y, z)            posterior: g(y*, z),  z ~ N(0, I)

If ``M + K > D`` the input is padded with zeros, ``x -> [x, x_0]``; the output is laid out ``[z, pad, y]`` with a
pad block wherever the nominal width exceeds ``M + K``. The objective (thesis sec. 4.1.2) sums, per batch:

- ``L_y = E ||y - f_y(x)||^2``: supervised fit of the forward process. For label-valued ``y`` (class probabilities,
  e.g. one-hot labels) ``y_loss="cross_entropy"`` uses ``L_y = E KL(y~ || softmax(f_y(x))) + E mean_k(f_y(x))^2``
  instead (thesis sec. 4.1.2: "cross-entropy for classification"): ``y~ = (1 - eps) y + eps / M`` is the label with
  smoothing ``eps``, and the network's ``y`` slot holds centred log-probabilities ``u(y) = log y~ - mean_k log y~``
  (wherever ``y`` enters the network: as the ``L_z`` target, in the backward pass, when sampling). ``u`` is a bijection
  from smoothed labels to centred logits and ``softmax(u(y)) = y~``, so the optimum is ``f_y(x) = u(y)``: the KL term
  fixes the logits up to a shift and the second term fixes the shift;
- ``L_z = MMD(q(y, z), p(y) p(z))`` between ``[f_y(x), f_z(x)]`` and ``[y, z ~ N(0, I)]``, with the gradient through
  the ``f_y`` output blocked, so that ``L_z`` only shapes ``z`` (makes it normal and independent of ``y``);
- ``L_x = MMD(q(x), p(x))`` between backward samples ``g(y, z ~ N)`` and prior samples ``x``; it does not move the
  optimum (thesis Corollary B.1) but speeds up convergence; ramped up during training, because a full-strength
  ``L_x`` at the start can make the model get stuck (reference notebook). Optionally (``x_weight_sigma``) each
  pair's term is weighted by ``exp(-||y_i - y_j||^2 / (2 sigma^2))``, so that mainly draws for similar observations
  are compared (reference tissue setup), with ``sigma`` decaying geometrically during training when
  ``x_weight_sigma_end`` is set (thesis app. B.5.3: "weighted MMD terms by observation distance with decaying
  gamma");
- padding losses: ``L_pad = E ||f_pad(x)||^2`` keeps the output padding near zero, and the reconstruction loss
  ``L_rec = E ||g(f(x) + noise) - x||^2`` (a backward pass with pad / z / y outputs perturbed by noise) forces the
  padding to carry no information.

Optional, not in the thesis (``weight_resim``): ``L_resim = E ||s(x~) - f_y(x~)||^2`` with ``x~ = g(y, z)`` the
backward draws of the batch, detached, and ``s`` the simulator: the forward fit of ``L_y`` extended to where the
posterior draws actually land (prior samples rarely reach the low-prior corners a few draws fall into, and there an
unfitted ``f_y`` sends ``g(y*, z)`` off the fiber ``s(x) = y*``). It vanishes at the same optimum (``f_y = s``), so
it does not change what is learned, only where the forward fit is accurate; it costs one simulation and one forward
pass per draw, so it needs a cheap simulator (fresh simulations, no fixed table).

Proposition 1 (thesis): when ``L_y = L_z = 0``, ``g(y*, z)`` with ``z ~ N(0, I)`` samples exactly ``p(x | y*)``.
Forward and backward terms are summed and differentiated together, which is the same as running the forward and
backward passes one after the other and accumulating their gradients before one update. MMDs use the multi-scale
inverse multiquadratic kernels of :mod:`inference.posterior.mmd`.

Training runs through :func:`zoo.training.train`: fresh simulations every batch when the budget allows (or no
budget is given), otherwise a fixed table of ``budget`` simulations. ``x`` and ``y`` are standardized with
statistics of a pilot simulation batch (saved with the weights), so kernel widths are in standard units.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

import simulators
from inference.api import EstimatorFiles, register_method, save_estimator
from inference.posterior.coupling import CouplingFlow
from inference.posterior.mmd import mmd
from simulators import Simulator
from zoo.training import TrainConfig, TrainHistory, train

_PILOT = 20_000  # simulations for the standardization statistics
_CHUNK = 1 << 16  # rows per backward pass when sampling
Y_LOSSES = ("mse", "cross_entropy")


@dataclass(frozen=True)
class INNOptions:
    """Options of the inverse INN.

    Defaults follow the released configuration of Ardizzone et al. 2019 (``inverse_problems_science``), which the
    issue calls the reference configuration: Adam lr 1e-3, betas (0.9, 0.95), weight decay 1e-5, batch 500, loss
    weights y 1 / z-MMD 50 / x-MMD 500 / reconstruction 1, noise y 0.05 / z 0.02 / pad 0.01, 4 coupling blocks of
    width 128, forward kernels (0.2, 2), (1.5, 2), (3.0, 2) and backward kernels (0.2, 0.1), (0.2, 0.5), (0.2, 2) as
    ``(C, a)`` pairs (see :mod:`inference.posterior.mmd`), 60 epochs x 200 iterations = 12 000 steps.
    Departures: the clamp is 2 (thesis ch. 2 and FrEIA's default; the release's 4 let the log-scales of every block
    saturate and the loss explode in our runs), subnetworks have 3 linear layers (thesis app. B.5), and the learning
    rate decays by a cosine to 1% (the release decays exponentially to 2%). Per-simulator settings are in
    ``benchmarks/inn.py``.

    Attributes:
        dim_z: latent width K; ``None``: ``D - M`` when positive (``y`` assumed to have full intrinsic dimension),
            else ``D`` (a ``y`` wider than ``x`` is treated as a label carrying no continuous information, as the
            one-hot Gaussian-mixture labels; thesis table B.2).
        dim_total: nominal network width; ``None``: ``max(D, M + K)``, the least padding. Must be >= both.
        blocks: affine coupling blocks.
        hidden: subnetwork width.
        layers: hidden layers per subnetwork.
        clamp: soft clamp of the log-scales.
        activation: subnetwork activation.
        steps: optimizer steps.
        batch_size: simulations per step.
        lr: Adam learning rate.
        betas: Adam betas.
        weight_decay: Adam weight decay.
        schedule: learning-rate schedule of :class:`zoo.training.TrainConfig` (``"cosine"`` decays to 1%; the
            reference decays exponentially to 2%).
        warmup: steps of linear learning-rate warm-up before the schedule (0: none).
        grad_clip: global gradient-norm clip (the reference clamps each gradient entry to +-15 instead).
        skip_nonfinite: steps in a row with a NaN / infinite loss or gradient that are skipped before the run
            counts as diverged (see :class:`zoo.training.TrainConfig`), so that one extreme batch does not end a
            run; a run whose weights blow up (arm INN without warm-up: backward draws of 1e12) still stops.
        weight_y: weight of ``L_y``.
        weight_z: weight of ``L_z``.
        weight_x: weight of ``L_x`` (0 disables it: the "only L_y, L_z" ablation).
        weight_rec: weight of the reconstruction loss.
        weight_pad: weight of the output-padding loss.
        weight_resim: weight of ``L_resim``, the forward fit on re-simulated posterior draws (0: off, the reference
            configuration). A zoo addition, not in the thesis: see the module docstring. Needs fresh simulations
            (no fixed table) and a simulator defined wherever draws may land. Ramped up with ``L_x``.
        resim_max: ``L_resim`` leaves out draws whose re-simulation lands farther than this from ``y`` (network
            units): only draws already near their fiber are fitted (see :func:`inn_loss`).
        noise_y: noise added to ``y`` (standard units) in training.
        noise_z: noise on ``z`` in the reconstruction pass.
        noise_pad: amplitude of the noise that fills padding in training.
        kernel_z: ``(C, a)`` pairs of the forward (``L_z``) kernel.
        kernel_x: ``(C, a)`` pairs of the backward (``L_x``) kernel.
        x_ramp: ramp ``L_x`` up as ``min(1, 2 * 0.002 ** (1 - step / steps))`` (reference notebook).
        x_weight_sigma: if > 0, weight the ``L_x`` element matrix by ``exp(-||y_i - y_j||^2 / (2 sigma^2))`` (the
            observation-distance weighting of the reference tissue setup; sigma in standard units).
        x_weight_sigma_end: if set, ``sigma`` decays geometrically from ``x_weight_sigma`` at the first step to this
            value at the last (thesis app. B.5.3 decays it "to 0"; it must stay > 0 here, because at 0 the weights
            become the identity and ``L_x`` turns into a pairwise loss that pulls every draw to its own training
            ``x``, collapsing the posterior onto its mean). ``None``: constant.
        y_loss: ``"mse"`` (default) or ``"cross_entropy"`` for label-valued ``y`` (each observation a probability
            vector, e.g. one-hot labels; see the module docstring). With cross-entropy ``y`` is not standardized.
        label_smoothing: ``eps`` of the cross-entropy option, in (0, 1): keeps the target logits finite (thesis
            ch. 5 uses 0.05).
        standardize: standardize ``x`` and ``y`` with pilot statistics.
        val_size: validation simulations (in addition to the budget).
        val_every: validate every this many steps (0: never).
        patience: early stop after this many validations without improvement (0: never).
        device: where to train (``"cpu"`` or ``"cuda"``).
        checkpoint_dir: where the training loop writes checkpoints (and resumes from), or ``None``.
    """

    dim_z: int | None = None
    dim_total: int | None = None
    blocks: int = 4
    hidden: int = 128
    layers: int = 2
    clamp: float = 2.0
    activation: str = "relu"
    steps: int = 12_000
    batch_size: int = 500
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 1e-5
    schedule: str = "cosine"
    warmup: int = 0
    grad_clip: float | None = 10.0
    skip_nonfinite: int = 10
    weight_y: float = 1.0
    weight_z: float = 50.0
    weight_x: float = 500.0
    weight_rec: float = 1.0
    weight_pad: float = 1.0
    weight_resim: float = 0.0
    resim_max: float = 0.5
    noise_y: float = 0.05
    noise_z: float = 0.02
    noise_pad: float = 0.01
    kernel_z: tuple[tuple[float, float], ...] = ((0.2, 2.0), (1.5, 2.0), (3.0, 2.0))
    kernel_x: tuple[tuple[float, float], ...] = ((0.2, 0.1), (0.2, 0.5), (0.2, 2.0))
    x_ramp: bool = True
    x_weight_sigma: float = 0.0
    x_weight_sigma_end: float | None = None
    y_loss: str = "mse"
    label_smoothing: float = 0.05
    standardize: bool = True
    val_size: int = 2000
    val_every: int = 500
    patience: int = 0
    device: str = "cpu"
    checkpoint_dir: str | None = None

    def __post_init__(self) -> None:
        # JSON round trips turn tuples into lists; normalize so that equality and hashing work.
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        for name in ("kernel_z", "kernel_x"):
            pairs = tuple(tuple(float(v) for v in p) for p in getattr(self, name))
            if not pairs or any(len(p) != 2 or not (p[0] > 0 and p[1] > 0) for p in pairs):
                raise ValueError(f"{name} must be non-empty (C, a) pairs with C > 0 and a > 0, got {pairs}")
            object.__setattr__(self, name, pairs)
        for name in ("steps", "batch_size", "blocks", "hidden", "layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.y_loss not in Y_LOSSES:
            raise ValueError(f"y_loss must be one of {', '.join(Y_LOSSES)}, got {self.y_loss!r}")
        if not 0.0 < self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in (0, 1), got {self.label_smoothing}")
        if self.x_weight_sigma < 0:
            raise ValueError(f"x_weight_sigma must be >= 0, got {self.x_weight_sigma}")
        end = self.x_weight_sigma_end
        if end is not None and not (self.x_weight_sigma > 0 and 0 < end <= self.x_weight_sigma):
            raise ValueError(
                f"x_weight_sigma_end must be in (0, x_weight_sigma] with x_weight_sigma > 0, got {end} "
                f"(x_weight_sigma={self.x_weight_sigma})"
            )
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 for the MMD terms, got {self.batch_size}")


class InverseINN(nn.Module):
    """The invertible network ``[z, pad, y] = f([x, pad])`` with standardization buffers.

    Arguments:
        dim_x: parameter width D.
        dim_y: observation width M.
        dim_z: latent width K.
        dim_total: nominal width (>= D and >= M + K).
        blocks, hidden, layers, clamp, activation: the coupling flow (see
            :class:`inference.posterior.coupling.CouplingFlow`).
        seed: seed of the fixed permutations.
        labels: ``y`` is label-valued (probability vectors): the network's ``y`` slot holds
            :func:`label_logits` instead of standardized ``y`` (the cross-entropy option of :class:`INNOptions`).
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
        dim_x: int,
        dim_y: int,
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
    ) -> None:
        super().__init__()
        if labels and not 0.0 < label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in (0, 1), got {label_smoothing}")
        if min(dim_x, dim_y) < 1 or dim_z < 0:
            raise ValueError(f"need dim_x >= 1, dim_y >= 1, dim_z >= 0, got {dim_x}, {dim_y}, {dim_z}")
        if dim_total < max(dim_x, dim_y + dim_z, 2):
            raise ValueError(
                f"dim_total must be >= max(dim_x, dim_y + dim_z, 2) = {max(dim_x, dim_y + dim_z, 2)}, got {dim_total}"
            )
        self._config = {
            "dim_x": dim_x,
            "dim_y": dim_y,
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
        self.labels, self.label_smoothing = bool(labels), float(label_smoothing)
        self.dim_x, self.dim_y, self.dim_z, self.dim_total = dim_x, dim_y, dim_z, dim_total
        self.pad_x = dim_total - dim_x
        self.pad_yz = dim_total - dim_y - dim_z
        self.flow = CouplingFlow(
            dim_total, blocks=blocks, hidden=hidden, layers=layers, clamp=clamp, activation=activation, seed=seed
        )
        self.register_buffer("x_mean", torch.zeros(dim_x))
        self.register_buffer("x_std", torch.ones(dim_x))
        self.register_buffer("y_mean", torch.zeros(dim_y))
        self.register_buffer("y_std", torch.ones(dim_y))

    def config(self) -> dict[str, Any]:
        """The constructor arguments (saved as JSON next to the weights)."""
        return dict(self._config)

    def set_standardization(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Set mean / std buffers from pilot samples x (n, D) and y (n, M); near-constant columns keep std 1.

        Label-valued ``y`` (``labels=True``) keeps mean 0 / std 1: it enters the network as :func:`label_logits`.
        """
        with torch.no_grad():
            for name, v in (("x", x), ("y", y)):
                if name == "y" and self.labels:
                    continue
                mean, std = v.mean(0), v.std(0)
                const = std < 1e-6
                getattr(self, f"{name}_mean").copy_(torch.where(const, torch.zeros_like(mean), mean))
                getattr(self, f"{name}_std").copy_(torch.where(const, torch.ones_like(std), std))

    def standardize(self, x: torch.Tensor | None, y: torch.Tensor | None):
        """Raw -> network units for ``x`` (*, D) and ``y`` (*, M) (either may be ``None``).

        ``x`` and real-valued ``y`` are standardized; label-valued ``y`` becomes :func:`label_logits`.
        """
        xs = None if x is None else (x - self.x_mean) / self.x_std
        if y is None:
            ys = None
        elif self.labels:
            ys = label_logits(y, self.label_smoothing)
        else:
            ys = (y - self.y_mean) / self.y_std
        return xs, ys

    def split(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Split a network output (*, dim_total) into ``z`` (*, K), ``pad`` (*, dim_total - M - K), ``y`` (*, M)."""
        k, m = self.dim_z, self.dim_y
        return out[..., :k], out[..., k : self.dim_total - m], out[..., self.dim_total - m :]

    def forward(self, x_in: torch.Tensor) -> torch.Tensor:
        """``f``: padded standardized parameters (*, dim_total) -> ``[z, pad, y]`` (*, dim_total)."""
        return self.flow(x_in)[0]

    def inverse(self, out: torch.Tensor) -> torch.Tensor:
        """``g = f^{-1}``: ``[z, pad, y]`` (*, dim_total) -> padded standardized parameters (*, dim_total)."""
        return self.flow.inverse(out)[0]

    @torch.no_grad()
    def sample(self, y: torch.Tensor, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Posterior draws ``g(y, z)``, ``z ~ N(0, I)``, pad 0, in raw units.

        Arguments:
            y: raw observations, shape (*batch, M), on the network's device.
            n: draws per observation.
            generator: source of ``z``.

        Returns:
            samples of shape (n, *batch, D).
        """
        batch = y.shape[:-1]
        _, ys = self.standardize(None, y.reshape(-1, self.dim_y))
        b = ys.shape[0]
        gdev = generator.device if generator is not None else ys.device
        z = torch.randn(n, b, self.dim_z, generator=generator, device=gdev, dtype=ys.dtype).to(ys.device)
        out = torch.cat((z, ys.new_zeros(n, b, self.pad_yz), ys.expand(n, b, self.dim_y)), -1)
        out = out.reshape(n * b, self.dim_total)
        x = torch.cat([self.inverse(chunk)[:, : self.dim_x] for chunk in out.split(_CHUNK)])
        x = x * self.x_std + self.x_mean
        return x.reshape(n, *batch, self.dim_x)


def label_logits(y: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Centred log-probabilities ``u(y) = log y~ - mean_k log y~`` of smoothed labels ``y~ = (1 - eps) y + eps / M``.

    The network units of label-valued observations (cross-entropy option): ``softmax(u(y)) = y~`` exactly and
    ``mean_k u(y) = 0``, so ``u`` is a bijection from smoothed labels to centred logits.

    Arguments:
        y: probability vectors (e.g. one-hot labels), shape (*, M).
        smoothing: ``eps`` in (0, 1).

    Returns:
        shape (*, M).

    Example:
        >>> u = label_logits(torch.tensor([0.0, 1.0]), 0.1)
        >>> torch.softmax(u, -1)
        tensor([0.0500, 0.9500])
    """
    p = (1.0 - smoothing) * y + smoothing / y.shape[-1]
    log_p = torch.log(p)
    return log_p - log_p.mean(-1, keepdim=True)


def check_labels(y: torch.Tensor, name: str = "observation") -> None:
    """Raise a one-line ``ValueError`` unless every row of ``y`` (*, M) is a probability vector (to 1e-4)."""
    if (
        not bool(torch.isfinite(y).all())
        or bool((y < 0).any())
        or not torch.allclose(y.sum(-1), torch.ones((), dtype=y.dtype, device=y.device), atol=1e-4, rtol=0)
    ):
        raise ValueError(
            f"this inverse INN was trained with y_loss='cross_entropy': each {name} must be a probability vector "
            "(entries >= 0 summing to 1, e.g. a one-hot label)"
        )


def x_weight_sigma_at(step: int, steps: int, options: INNOptions) -> float:
    """The observation-distance width ``sigma`` of ``L_x`` at ``step``: constant, or geometric decay.

    ``x_weight_sigma * (x_weight_sigma_end / x_weight_sigma) ** (step / steps)``: ``x_weight_sigma`` at step 0,
    ``x_weight_sigma_end`` at ``step = steps``.
    """
    o = options
    if o.x_weight_sigma_end is None or o.x_weight_sigma <= 0:
        return o.x_weight_sigma
    frac = min(max(step / max(steps, 1), 0.0), 1.0)
    return o.x_weight_sigma * (o.x_weight_sigma_end / o.x_weight_sigma) ** frac


def ramp(step: int, steps: int) -> float:
    """The L_x ramp of the reference notebook: ``min(1, 2 * 0.002 ** (1 - step / steps))``.

    Exponential from 0.004 at the start to 1 at 89% of training.
    """
    return min(1.0, 2.0 * 0.002 ** (1.0 - step / max(steps, 1)))


def _y_fit(out_y: torch.Tensor, y: torch.Tensor, y_loss: str) -> torch.Tensor:
    """Per-row forward-fit loss of the ``y`` outputs ``out_y`` (B, M) against targets ``y`` in network units: (B,).

    ``"mse"``: ``||out_y - y||^2``. ``"cross_entropy"``: ``KL(y~ || softmax(out_y)) + mean_k(out_y)^2``, with
    ``y~ = softmax(y)`` the smoothed label (``y`` holds :func:`label_logits`); the KL is the cross-entropy minus the
    target's entropy (0 at the optimum) and the second term fixes the logits' shift.
    """
    if y_loss == "cross_entropy":
        target = torch.softmax(y, -1)
        kl = (target * (torch.log(target) - torch.log_softmax(out_y, -1))).sum(-1)
        return kl + out_y.mean(-1) ** 2
    return ((out_y - y) ** 2).sum(-1)


def inn_loss(
    model: InverseINN,
    x: torch.Tensor,
    y: torch.Tensor,
    options: INNOptions,
    *,
    x_factor: float = 1.0,
    x_weight_sigma: float | None = None,
    resimulate: Callable[[torch.Tensor], torch.Tensor] | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """The bidirectional objective on one batch (see the module docstring).

    Arguments:
        model: the network.
        x: standardized parameters, shape (B, D).
        y: observations in network units (:meth:`InverseINN.standardize`), shape (B, M).
        options: loss weights, noise levels and kernels.
        x_factor: extra factor on ``L_x`` and ``L_resim`` (the ramp).
        x_weight_sigma: width of the observation-distance weighting of ``L_x`` (``None``:
            ``options.x_weight_sigma``; 0: unweighted); see :func:`x_weight_sigma_at`.
        resimulate: the simulator in network units, standardized parameters (B, D) -> network-unit observations
            (B, M); needed for ``L_resim`` (``options.weight_resim > 0``), which is 0 without it.
        generator: source of the latent and padding noise (on ``x``'s device).

    Returns:
        ``{"loss", "y", "z", "x", "rec", "pad", "resim"}``; ``"loss"`` is the weighted sum, the others unweighted.
    """
    b = x.shape[0]
    kw = {"generator": generator, "device": x.device, "dtype": x.dtype}
    o = options
    x_in = torch.cat((x, o.noise_pad * torch.randn(b, model.pad_x, **kw)), -1)
    y_noisy = y + o.noise_y * torch.randn(y.shape, **kw)
    z_target = torch.randn(b, model.dim_z, **kw)
    pad_target = o.noise_pad * torch.randn(b, model.pad_yz, **kw)

    # forward pass: L_y, L_pad, L_z (gradient through the y output blocked)
    out_z, out_pad, out_y = model.split(model(x_in))
    l_y = _y_fit(out_y, y if o.y_loss == "cross_entropy" else y_noisy, o.y_loss).mean()
    l_pad = ((out_pad - pad_target) ** 2).sum(-1).mean()
    l_z = mmd(torch.cat((out_z, out_y.detach()), -1), torch.cat((z_target, y_noisy), -1), o.kernel_z)

    # backward pass: L_x between g(y, z ~ N) and the (padded) prior samples
    zero = x.new_zeros(())
    l_x = zero
    x_gen = None
    if o.weight_x > 0 or (o.weight_resim > 0 and resimulate is not None):
        x_gen = model.inverse(torch.cat((z_target, pad_target, y_noisy), -1))
    if o.weight_x > 0:
        weights = None
        sigma = o.x_weight_sigma if x_weight_sigma is None else x_weight_sigma
        if sigma > 0:
            d2 = ((y_noisy.unsqueeze(1) - y_noisy.unsqueeze(0)) ** 2).sum(-1)
            weights = torch.exp(-0.5 * d2 / sigma**2)
        l_x = mmd(x_in, x_gen, o.kernel_x, weights=weights)

    # reconstruction pass with the padding overwritten by fresh noise of the same amplitude (thesis sec. 4.1.2),
    # z and y perturbed slightly as in the reference code. Only with padding: without it the pass merely rewards
    # an inverse that shrinks the z / y noise, which drives every log-scale into the clamp (seen on the arm).
    l_rec = zero
    if o.weight_rec > 0 and (model.pad_x or model.pad_yz):
        rec_in = torch.cat(
            (
                out_z.detach() + o.noise_z * torch.randn(out_z.shape, **kw),
                o.noise_pad * torch.randn(out_pad.shape, **kw),
                out_y.detach() + o.noise_y * torch.randn(out_y.shape, **kw),
            ),
            -1,
        )
        l_rec = ((model.inverse(rec_in) - x_in) ** 2).sum(-1).mean()

    loss = o.weight_y * l_y + o.weight_pad * l_pad + o.weight_z * l_z + o.weight_x * x_factor * l_x
    loss = loss + o.weight_rec * l_rec

    # forward fit on the re-simulated backward draws (optional, see the module docstring)
    l_resim = zero
    if o.weight_resim > 0 and resimulate is not None:
        x_draw = x_gen.detach()[:, : model.dim_x]
        with torch.no_grad():
            y_draw = resimulate(x_draw)
        draw_in = torch.cat((x_draw, o.noise_pad * torch.randn(b, model.pad_x, **kw)), -1)
        # f_y(x_draw) = y_noisy up to rounding (x_draw = g(y_noisy, z)), so the squared re-simulation error is known
        # before the forward pass. Draws farther than resim_max from their fiber are left out (as are draws outside
        # the simulator's domain): fitting f_y there makes f contract far-out regions, g expand them, and the draws
        # run away (training diverged without this in our arm runs).
        if o.y_loss == "cross_entropy":
            err2 = ((torch.softmax(y_draw, -1) - torch.softmax(y_noisy, -1)) ** 2).sum(-1)
        else:
            err2 = ((y_draw - y_noisy) ** 2).sum(-1)
        ok = torch.isfinite(y_draw).all(-1) & (err2 <= o.resim_max**2)
        out_y_draw = model.split(model(draw_in[ok]))[2]
        l_resim = _y_fit(out_y_draw, y_draw[ok], o.y_loss).sum() / b
        loss = loss + o.weight_resim * x_factor * l_resim
    return {
        "loss": loss,
        "y": l_y.detach(),
        "z": l_z.detach(),
        "x": l_x.detach(),
        "rec": l_rec.detach(),
        "pad": l_pad.detach(),
        "resim": l_resim.detach(),
    }


class INNPosterior:
    """``q(x | x_o)`` of an inverse INN for a batch of observations; sampling only (no density).

    Arguments:
        model: the trained network.
        x_o: observations, shape (*batch, *obs_shape).
        obs_shape: the simulator's observation shape.
    """

    has_log_prob = False

    def __init__(self, model: InverseINN, x_o: torch.Tensor, obs_shape: tuple[int, ...]) -> None:
        x_o = simulators.check_observation(x_o, tuple(obs_shape))
        k = len(obs_shape)
        self.model, self.x_o = model, x_o
        self.batch_shape = x_o.shape[: x_o.ndim - k]
        self._y = x_o.reshape(*self.batch_shape, model.dim_y)
        if model.labels:
            check_labels(self._y)

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws per observation, shape (n, *batch, D), on ``x_o``'s device and dtype."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        p = next(self.model.parameters())
        y = self._y.to(device=p.device, dtype=p.dtype)
        return self.model.sample(y, n, generator=generator).to(device=self.x_o.device, dtype=self.x_o.dtype)

    def log_prob(self, theta: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("the inverse INN has no tractable posterior density; use sample()")


class INNEstimator:
    """A fitted inverse INN: ``posterior(x_o)``, ``save(dir)``; rebuilt by ``inference.load(dir)``.

    Arguments:
        simulator: the simulator it was trained for.
        model: the trained network.
        options: the options it was trained with.
        budget: the simulation budget (``None``: fresh simulations every step).
        history: the training history, if known.
    """

    method = "inn"

    def __init__(
        self,
        simulator: Simulator,
        model: InverseINN,
        options: INNOptions,
        budget: int | None,
        history: dict[str, Any] | None = None,
    ) -> None:
        self.simulator, self.model, self.options, self.budget = simulator, model, options, budget
        self.history = history or {}

    def posterior(self, x_o: torch.Tensor) -> INNPosterior:
        """The posterior for observations ``x_o`` of shape (*batch, *obs_shape)."""
        return INNPosterior(self.model, x_o, tuple(self.simulator.obs_shape))

    def save(self, directory: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write ``estimator.json`` (options, network config, training summary) and ``weights.safetensors``."""
        summary = {
            k: self.history[k] for k in ("seconds", "best_val", "best_step", "stopped_early") if k in self.history
        }
        if "train" in self.history and self.history["train"]:
            summary["final_terms"] = self.history["train"][-1]
        return save_estimator(
            directory,
            method=self.method,
            simulator=self.simulator,
            options=self.options,
            budget=self.budget,
            config={"network": self.model.config(), "training": summary},
            tensors=self.model.state_dict(),
            overwrite=overwrite,
        )


def load_inn(files: EstimatorFiles) -> INNEstimator:
    """Rebuild an :class:`INNEstimator` from a saved directory (see :func:`inference.load`)."""
    try:
        model = InverseINN(**files.config["network"])
        model.load_state_dict(files.tensors)
    except (KeyError, TypeError, RuntimeError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"{files.directory} does not hold a valid inverse INN ({msg})") from None
    model.eval()
    return INNEstimator(files.simulator, model, files.options, files.budget, files.config.get("training"))


def _dims(simulator: Simulator, options: INNOptions) -> tuple[int, int, int, int]:
    d = int(simulator.prior.event_shape[0])
    m = math.prod(simulator.obs_shape)
    k = options.dim_z if options.dim_z is not None else (d - m if d > m else d)
    total = options.dim_total if options.dim_total is not None else max(d, m + k, 2)
    if k < 0 or total < max(d, m + k, 2):
        raise ValueError(
            f"dim_z={k} and dim_total={total} do not fit parameters of width {d} and observations of width {m}: "
            f"need dim_z >= 0 and dim_total >= {max(d, m + k, 2)}"
        )
    return d, m, k, total


def _simulate(simulator: Simulator, n: int, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    theta = simulators.sample_prior(simulator.prior, n, generator=generator)
    with torch.no_grad():
        x = simulator.simulate(theta, generator=generator)
    return theta, x.reshape(n, -1)


def fit_inn(
    simulator: Simulator,
    *,
    budget: int | None = None,
    options: INNOptions | None = None,
    generator: torch.Generator | None = None,
    progress: bool = True,
) -> INNEstimator:
    """Train an inverse INN on simulations (registered as ``inference.fit(..., method="inn")``).

    Arguments:
        simulator: the forward model.
        budget: training simulations. ``None`` or ``>= steps * batch_size``: fresh simulations every step (at most
            ``steps * batch_size`` are used); smaller: a fixed table of ``budget`` simulations, batches drawn from it.
            ``val_size`` validation simulations come on top.
        options: :class:`INNOptions` (``None``: defaults).
        generator: source of all randomness (weights, permutations, simulations, noise).
        progress: show a progress bar with the loss terms.

    Returns:
        the trained :class:`INNEstimator`.

    Raises:
        zoo.training.TrainingDiverged: the loss became non-finite (last good weights kept, and checkpointed with
            ``checkpoint_dir``).
    """
    o = options or INNOptions()
    d, m, k, total = _dims(simulator, o)
    device = torch.device(o.device)
    dtype = torch.float32

    def seed() -> int:
        return int(torch.randint(0, 2**62, (1,), generator=generator))

    model = InverseINN(
        d,
        m,
        k,
        total,
        blocks=o.blocks,
        hidden=o.hidden,
        layers=o.layers,
        clamp=o.clamp,
        activation=o.activation,
        seed=seed() % 2**31,
        labels=o.y_loss == "cross_entropy",
        label_smoothing=o.label_smoothing,
    )
    model.flow.reset_parameters(generator)
    if o.y_loss == "cross_entropy":
        check_labels(_simulate(simulator, 100, generator)[1], "simulated observation")
    if o.standardize:
        model.set_standardization(*_simulate(simulator, _PILOT, generator))
    model.to(device=device, dtype=dtype)
    noise_gen = torch.Generator(device=device).manual_seed(seed())

    def prepare(theta: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return model.standardize(theta.to(device, dtype), x.to(device, dtype))

    table = None
    if budget is not None and budget < o.steps * o.batch_size:
        if budget < o.batch_size:
            raise ValueError(f"budget ({budget}) must be at least one batch (batch_size={o.batch_size})")
        if o.weight_resim > 0:
            raise ValueError(
                f"weight_resim > 0 simulates every posterior draw in training, beyond a fixed table of {budget} "
                "simulations; set weight_resim=0 or train on fresh simulations (no budget)"
            )
        table = prepare(*_simulate(simulator, budget, generator))

    def batches(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        if table is None:
            return prepare(*_simulate(simulator, o.batch_size, generator))
        idx = torch.randint(0, table[0].shape[0], (o.batch_size,), generator=generator).to(device)
        return table[0][idx], table[1][idx]

    def resimulate(xs: torch.Tensor) -> torch.Tensor:
        theta = xs * model.x_std + model.x_mean
        x = simulator.simulate(theta.to(dtype=torch.float32).cpu(), generator=generator).reshape(len(xs), -1)
        return model.standardize(None, x.to(device, dtype))[1]

    def loss_fn(batch: tuple[torch.Tensor, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        factor = ramp(step, o.steps) if o.x_ramp else 1.0
        sigma = x_weight_sigma_at(step, o.steps, o)
        resim = resimulate if o.weight_resim > 0 else None
        return inn_loss(model, *batch, o, x_factor=factor, x_weight_sigma=sigma, resimulate=resim, generator=noise_gen)

    val_loss = None
    if o.val_every and o.val_size >= 2:
        val = prepare(*_simulate(simulator, o.val_size, generator))
        val_seed = seed()

        def val_loss() -> float:  # same noise and weights every time (the final ones), so that validations compare
            g = torch.Generator(device=device).manual_seed(val_seed)
            sigma = x_weight_sigma_at(o.steps, o.steps, o)
            return float(inn_loss(model, *val, o, x_weight_sigma=sigma, generator=g)["loss"])

    config = TrainConfig(
        steps=o.steps,
        lr=o.lr,
        betas=o.betas,
        weight_decay=o.weight_decay,
        schedule=o.schedule,
        warmup=o.warmup,
        grad_clip=o.grad_clip,
        skip_nonfinite=o.skip_nonfinite,
        val_every=o.val_every if val_loss else 0,
        patience=o.patience,
        checkpoint_every=500 if o.checkpoint_dir else 0,
    )
    history: TrainHistory = train(
        model,
        loss_fn,
        batches,
        config=config,
        val_loss=val_loss,
        checkpoint_dir=o.checkpoint_dir,
        resume=o.checkpoint_dir is not None,
        progress=progress,
        desc="inn",
    )
    return INNEstimator(simulator, model, o, budget, history.to_json())


register_method("inn", fit_inn, load_inn, INNOptions)

__all__ = [
    "INNEstimator",
    "INNOptions",
    "INNPosterior",
    "InverseINN",
    "check_labels",
    "fit_inn",
    "inn_loss",
    "label_logits",
    "load_inn",
    "ramp",
    "x_weight_sigma_at",
]
