"""The objective of the inverse INN and its settings (:class:`INNLoss`); see :mod:`inference.posterior.inn`.

The terms keep the thesis's names: ``L_y`` fits the observation slot (the thesis's y is zoo's ``x``), ``L_z`` shapes
the latent, ``L_x`` compares backward draws with prior draws of the parameters (the thesis's x is zoo's ``theta``).
The option names follow the terms (``weight_y`` weights ``L_y``, ``noise_y`` perturbs the observation, ...).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from inference.posterior.inn.kernels import mmd_loss
from inference.posterior.inn.network import InverseINN

Y_LOSSES = ("mse", "cross_entropy")
_NON_NEGATIVE = tuple(f"weight_{t}" for t in ("y", "z", "x", "rec", "pad", "resim"))
_NON_NEGATIVE += ("noise_y", "noise_z", "noise_pad", "x_weight_sigma")


@dataclass(frozen=True)
class INNLoss:
    """Loss weights, noise levels and kernels of the inverse INN (thesis sec. 4.1.2; released configuration).

    Defaults follow the released configuration of Ardizzone et al. 2019 (``inverse_problems_science``): loss weights
    y 1 / z-MMD 50 / x-MMD 500 / reconstruction 1, noise y 0.05 / z 0.02 / pad 0.01, forward kernels (0.2, 2),
    (1.5, 2), (3.0, 2) and backward kernels (0.2, 0.1), (0.2, 0.5), (0.2, 2) as ``(C, a)`` pairs (see
    :mod:`inference.posterior.inn.kernels`).

    Attributes:
        weight_y: weight of ``L_y`` (the forward fit of the observation).
        weight_z: weight of ``L_z``.
        weight_x: weight of ``L_x`` (0 disables it: the "only L_y, L_z" ablation).
        weight_rec: weight of the reconstruction loss.
        weight_pad: weight of the output-padding loss.
        weight_resim: weight of ``L_resim``, the forward fit on re-simulated posterior draws (0: off, the reference
            configuration). A zoo addition, not in the thesis: see :mod:`inference.posterior.inn`. Needs fresh
            simulations (no fixed table) and a simulator defined wherever draws may land. Ramped up with ``L_x``.
        resim_max: ``L_resim`` leaves out draws whose re-simulation lands farther than this from the observation
            (network units): only draws already near their fiber are fitted (see :func:`inn_loss`).
        noise_y: noise added to the observation (standard units) in training.
        noise_z: noise on ``z`` in the reconstruction pass.
        noise_pad: amplitude of the noise that fills padding in training.
        kernel_z: ``(C, a)`` pairs of the forward (``L_z``) kernel.
        kernel_x: ``(C, a)`` pairs of the backward (``L_x``) kernel.
        x_ramp: ramp ``L_x`` up as ``min(1, 2 * 0.002 ** (1 - step / steps))`` (reference notebook).
        x_weight_sigma: if > 0, weight the ``L_x`` element matrix by ``exp(-||x_i - x_j||^2 / (2 sigma^2))`` over
            the observations (the observation-distance weighting of the reference tissue setup; standard units).
        x_weight_sigma_end: if set, ``sigma`` decays geometrically from ``x_weight_sigma`` at the first step to this
            value at the last (thesis app. B.5.3 decays it "to 0"; it must stay > 0 here, because at 0 the weights
            become the identity and ``L_x`` turns into a pairwise loss that pulls every draw to its own training
            parameters, collapsing the posterior onto its mean). ``None``: constant.
        y_loss: ``"mse"`` (default) or ``"cross_entropy"`` for label-valued observations (each a probability
            vector, e.g. one-hot labels). With cross-entropy the observation is not standardized.
        label_smoothing: ``eps`` of the cross-entropy option, in (0, 1): keeps the target logits finite (thesis
            ch. 5 uses 0.05).
    """

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

    def __post_init__(self) -> None:
        # JSON round trips turn tuples into lists; normalize so that equality and hashing work.
        for name in ("kernel_z", "kernel_x"):
            try:
                pairs = tuple(tuple(float(v) for v in p) for p in getattr(self, name))
            except (TypeError, ValueError):
                pairs = ()
            if not pairs or any(len(p) != 2 or not (0 < p[0] < math.inf and 0 < p[1] < math.inf) for p in pairs):
                raise ValueError(
                    f"{name} must be non-empty (C, a) pairs with C > 0 and a > 0, got {getattr(self, name)}"
                )
            object.__setattr__(self, name, pairs)
        for name in _NON_NEGATIVE:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v < math.inf:
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        if not (isinstance(self.resim_max, int | float) and self.resim_max > 0):
            raise ValueError(f"resim_max must be > 0, got {self.resim_max!r}")
        if self.y_loss not in Y_LOSSES:
            raise ValueError(f"y_loss must be one of {', '.join(Y_LOSSES)}, got {self.y_loss!r}")
        if not 0.0 < self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in (0, 1), got {self.label_smoothing}")
        end = self.x_weight_sigma_end
        if end is not None and not (self.x_weight_sigma > 0 and 0 < end <= self.x_weight_sigma):
            raise ValueError(
                f"x_weight_sigma_end must be in (0, x_weight_sigma] with x_weight_sigma > 0, got {end} "
                f"(x_weight_sigma={self.x_weight_sigma})"
            )


def x_weight_sigma_at(step: int, steps: int, loss: INNLoss) -> float:
    """The observation-distance width ``sigma`` of ``L_x`` at ``step``: constant, or geometric decay.

    ``x_weight_sigma * (x_weight_sigma_end / x_weight_sigma) ** (step / steps)``: ``x_weight_sigma`` at step 0,
    ``x_weight_sigma_end`` at ``step = steps``.
    """
    o = loss
    if o.x_weight_sigma_end is None or o.x_weight_sigma <= 0:
        return o.x_weight_sigma
    frac = min(max(step / max(steps, 1), 0.0), 1.0)
    return o.x_weight_sigma * (o.x_weight_sigma_end / o.x_weight_sigma) ** frac


def ramp(step: int, steps: int) -> float:
    """The L_x ramp of the reference notebook: ``min(1, 2 * 0.002 ** (1 - step / steps))``.

    Exponential from 0.004 at the start to 1 at 89% of training.
    """
    return min(1.0, 2.0 * 0.002 ** (1.0 - step / max(steps, 1)))


def _y_fit(out_x: torch.Tensor, x: torch.Tensor, y_loss: str) -> torch.Tensor:
    """Per-row forward-fit loss of the observation outputs ``out_x`` (B, M) against targets ``x`` (network units).

    ``"mse"``: ``||out_x - x||^2``. ``"cross_entropy"``: ``KL(x~ || softmax(out_x)) + mean_k(out_x)^2``, with
    ``x~ = softmax(x)`` the smoothed label (``x`` holds label logits); the KL is the cross-entropy minus the target's
    entropy (0 at the optimum) and the second term fixes the logits' shift. Returns (B,).
    """
    if y_loss == "cross_entropy":
        target = torch.softmax(x, -1)
        kl = (target * (torch.log(target) - torch.log_softmax(out_x, -1))).sum(-1)
        return kl + out_x.mean(-1) ** 2
    return ((out_x - x) ** 2).sum(-1)


def inn_loss(
    model: InverseINN,
    theta: torch.Tensor,
    x: torch.Tensor,
    loss: INNLoss,
    *,
    x_factor: float = 1.0,
    x_weight_sigma: float | None = None,
    resimulate: Callable[[torch.Tensor], torch.Tensor] | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """The bidirectional objective on one batch (see :mod:`inference.posterior.inn`).

    Arguments:
        model: the network.
        theta: standardized parameters, shape (B, D).
        x: observations in network units (:meth:`InverseINN.standardize`), shape (B, M).
        loss: loss weights, noise levels and kernels.
        x_factor: extra factor on ``L_x`` and ``L_resim`` (the ramp).
        x_weight_sigma: width of the observation-distance weighting of ``L_x`` (``None``:
            ``loss.x_weight_sigma``; 0: unweighted); see :func:`x_weight_sigma_at`.
        resimulate: the simulator in network units, standardized parameters (B, D) -> network-unit observations
            (B, M); needed for ``L_resim`` (``loss.weight_resim > 0``), which is 0 without it.
        generator: source of the latent and padding noise (on ``theta``'s device).

    Returns:
        ``{"loss", "y", "z", "x", "rec", "pad", "resim"}``; ``"loss"`` is the weighted sum, the others unweighted.
    """
    b = theta.shape[0]
    kw = {"generator": generator, "device": theta.device, "dtype": theta.dtype}
    o = loss
    theta_in = torch.cat((theta, o.noise_pad * torch.randn(b, model.pad_theta, **kw)), -1)
    x_noisy = x + o.noise_y * torch.randn(x.shape, **kw)
    z_target = torch.randn(b, model.dim_z, **kw)
    pad_target = o.noise_pad * torch.randn(b, model.pad_out, **kw)

    # forward pass: L_y, L_pad, L_z (gradient through the observation output blocked)
    out_z, out_pad, out_x = model.split(model(theta_in))
    l_y = _y_fit(out_x, x if o.y_loss == "cross_entropy" else x_noisy, o.y_loss).mean()
    l_pad = ((out_pad - pad_target) ** 2).sum(-1).mean()
    l_z = mmd_loss(torch.cat((out_z, out_x.detach()), -1), torch.cat((z_target, x_noisy), -1), o.kernel_z)

    # backward pass: L_x between g(x, z ~ N) and the (padded) prior samples
    zero = theta.new_zeros(())
    l_x = zero
    theta_gen = None
    if o.weight_x > 0 or (o.weight_resim > 0 and resimulate is not None):
        theta_gen = model.inverse(torch.cat((z_target, pad_target, x_noisy), -1))
    if o.weight_x > 0:
        weights = None
        sigma = o.x_weight_sigma if x_weight_sigma is None else x_weight_sigma
        if sigma > 0:
            d2 = ((x_noisy.unsqueeze(1) - x_noisy.unsqueeze(0)) ** 2).sum(-1)
            weights = torch.exp(-0.5 * d2 / sigma**2)
        l_x = mmd_loss(theta_in, theta_gen, o.kernel_x, weights=weights)

    # reconstruction pass with the padding overwritten by fresh noise of the same amplitude (thesis sec. 4.1.2),
    # z and the observation perturbed slightly as in the reference code. Only with padding: without it the pass
    # merely rewards an inverse that shrinks the z / observation noise, which drives every log-scale into the clamp
    # (seen on the arm).
    l_rec = zero
    if o.weight_rec > 0 and (model.pad_theta or model.pad_out):
        rec_in = torch.cat(
            (
                out_z.detach() + o.noise_z * torch.randn(out_z.shape, **kw),
                o.noise_pad * torch.randn(out_pad.shape, **kw),
                out_x.detach() + o.noise_y * torch.randn(out_x.shape, **kw),
            ),
            -1,
        )
        l_rec = ((model.inverse(rec_in) - theta_in) ** 2).sum(-1).mean()

    total = o.weight_y * l_y + o.weight_pad * l_pad + o.weight_z * l_z + o.weight_x * x_factor * l_x
    total = total + o.weight_rec * l_rec

    # forward fit on the re-simulated backward draws (optional, see the package docstring)
    l_resim = zero
    if o.weight_resim > 0 and resimulate is not None:
        theta_draw = theta_gen.detach()[:, : model.dim_theta]
        with torch.no_grad():
            x_draw = resimulate(theta_draw)
        draw_in = torch.cat((theta_draw, o.noise_pad * torch.randn(b, model.pad_theta, **kw)), -1)
        # f_x(theta_draw) = x_noisy up to rounding (theta_draw = g(x_noisy, z)), so the squared re-simulation error is
        # known before the forward pass. Draws farther than resim_max from their fiber are left out (as are draws
        # outside the simulator's domain): fitting f_x there makes f contract far-out regions, g expand them, and the
        # draws run away (training diverged without this in our arm runs).
        if o.y_loss == "cross_entropy":
            err2 = ((torch.softmax(x_draw, -1) - torch.softmax(x_noisy, -1)) ** 2).sum(-1)
        else:
            err2 = ((x_draw - x_noisy) ** 2).sum(-1)
        ok = torch.isfinite(x_draw).all(-1) & (err2 <= o.resim_max**2)
        out_x_draw = model.split(model(draw_in[ok]))[2]
        l_resim = _y_fit(out_x_draw, x_draw[ok], o.y_loss).sum() / b
        total = total + o.weight_resim * x_factor * l_resim
    return {
        "loss": total,
        "y": l_y.detach(),
        "z": l_z.detach(),
        "x": l_x.detach(),
        "rec": l_rec.detach(),
        "pad": l_pad.detach(),
        "resim": l_resim.detach(),
    }
