"""Conditional INN trained by maximum likelihood, with a summary network (thesis ch. 3; BayesFlow).

An invertible map ``z = f(theta; h)`` conditioned on a learned summary ``h = phi(x)`` of the observation turns the
posterior into a standard normal: ``q(theta | x) = N(f(theta; h); 0, I) |det df/dtheta|``. Flow and summary are
trained jointly on simulated pairs (theta_i, x_i) by the conditional maximum-likelihood loss (thesis eq. 3.4)::

    L_cML = E_i [ ||f(theta_i; phi(x_i))||^2 / 2  -  log|det J_f(theta_i; phi(x_i))| ]

whose minimum over flows is the true posterior (thesis Prop. 1). Posterior draws are ``theta = f^{-1}(z; h)`` with
``z ~ N(0, I)``: one inverse pass, batched over draws and observations at once. The summary ``h`` is computed once
per observation and broadcast over its draws.

theta and x are standardized internally (means and standard deviations of the training simulations, stored with
the weights; for sets, per element). For set-valued simulators (``simulator.n_obs = (lo, hi)``) each training
batch draws one set size K uniformly from ``[lo, hi]``, so one model serves every K in the range (BayesFlow's
variable-N training), and the default summary is the permutation-invariant
:class:`~inference.networks.summary.DeepSet`.

Blocks: the affine coupling blocks of :mod:`inference.networks.coupling` (soft-clamped, condition concatenated to
each subnetwork input) or normflows' conditional rational-quadratic spline coupling (``coupling="spline"``), each
followed by a fixed random permutation, optionally preceded by an ActNorm.

Rooms: :mod:`~inference.posterior.cinn.network` (the network), :mod:`~inference.posterior.cinn.estimator` (posterior,
save, load), :mod:`~inference.posterior.cinn.options` (options), :mod:`~inference.posterior.cinn.method` (training,
registration as ``"cinn"``), :mod:`~inference.posterior.cinn.distill` (distillation from an FMPE teacher).

References:
    Ardizzone, PhD thesis, ch. 3 (cINN) and sec. 3.8.6; Ardizzone et al., *Guided image generation with conditional
    invertible neural networks*, 2019; Radev et al., *BayesFlow*, IEEE TNNLS 2020; Durkan et al., *Neural spline
    flows*, NeurIPS 2019.
"""

from inference.posterior.cinn.estimator import CINNEstimator, CINNPosterior, load_cinn
from inference.posterior.cinn.method import architecture, build_model, fit_cinn
from inference.posterior.cinn.network import ConditionalINN
from inference.posterior.cinn.options import TRAIN, CINNOptions

__all__ = [
    "TRAIN",
    "CINNEstimator",
    "CINNOptions",
    "CINNPosterior",
    "ConditionalINN",
    "architecture",
    "build_model",
    "fit_cinn",
    "load_cinn",
]
