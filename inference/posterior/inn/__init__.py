"""Inverse INN trained bidirectionally with MMD (Ardizzone et al. 2019; Ardizzone thesis, ch. 4).

An invertible network learns the well-posed forward process and yields the ill-posed inverse for free. This
docstring uses the thesis's notation: parameters ``x`` (zoo's theta, dim D), observations ``y`` (zoo's x, dim M)
and latent variables ``z ~ N(0, I)`` (dim K, by default D - M: the part of ``x`` that ``y`` does not determine); the
code names them ``theta``, ``x`` and ``z``, and keeps the thesis's names for the loss terms and their options::

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
inverse multiquadratic kernels of :mod:`inference.posterior.inn.kernels`.

Training runs through :func:`zoo.training.train`: fresh simulations every batch when the budget allows (or no
budget is given), otherwise a fixed table of ``budget`` simulations. ``x`` and ``y`` are standardized with
statistics of a pilot simulation batch (saved with the weights), so kernel widths are in standard units.

Rooms: :mod:`~inference.posterior.inn.network` (the network), :mod:`~inference.posterior.inn.loss` (the objective
and :class:`INNLoss`), :mod:`~inference.posterior.inn.kernels` (the MMD), :mod:`~inference.posterior.inn.method`
(options, estimator, training, registration as ``"inn"``).
"""

from inference.posterior.inn.kernels import imq, mmd_loss
from inference.posterior.inn.loss import INNLoss, inn_loss, ramp, x_weight_sigma_at
from inference.posterior.inn.method import TRAIN, INNEstimator, INNOptions, INNPosterior, fit_inn, load_inn
from inference.posterior.inn.network import InverseINN, check_labels, label_logits

__all__ = [
    "TRAIN",
    "INNEstimator",
    "INNLoss",
    "INNOptions",
    "INNPosterior",
    "InverseINN",
    "check_labels",
    "fit_inn",
    "imq",
    "inn_loss",
    "label_logits",
    "load_inn",
    "mmd_loss",
    "ramp",
    "x_weight_sigma_at",
]
