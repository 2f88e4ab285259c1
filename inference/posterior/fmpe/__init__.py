"""Flow-matching posterior estimation (FMPE): a conditional vector field whose ODE carries noise to the posterior.

A vector field ``v(theta_t, t; h)``, conditioned on a learned summary ``h = phi(x)`` of the observation, is trained on
simulated pairs with the conditional flow-matching loss on the Gaussian optimal-transport path (Lipman et al. 2023;
Dax et al. 2023). A posterior draw solves ``d theta / dt = v`` from ``theta_0 ~ N(0, I)`` at t = 0 to t = 1 (a
fixed-step Euler, midpoint or RK4 solve, or the adaptive Dormand-Prince solver of torchdiffeq, the default);
``log_prob`` solves it backward with the divergence of ``v`` (the instantaneous change of variables). theta and x are
standardized, a bounded prior's parameters are modelled through the support transform, and set-valued observations
use the cINN's summary networks, so everything the cINN takes, FMPE takes.

Flow matching is the more accurate of zoo's two amortized methods and by far the slower sampler (dozens to
hundreds of field evaluations per draw instead of one inverse pass); docs/amortized.md has the measurements.

Rooms: :mod:`~inference.posterior.fmpe.network` (field and ODE), :mod:`~inference.posterior.fmpe.estimator`
(posterior, save, load), :mod:`~inference.posterior.fmpe.method` (options, loss, training, registration).

References:
    Lipman et al., *Flow matching for generative modeling*, ICLR 2023; Dax et al., *Flow matching for scalable
    simulation-based inference*, NeurIPS 2023; Chen et al., *Neural ordinary differential equations*, NeurIPS 2018.
"""

from inference.posterior.fmpe.estimator import FMPEEstimator, FMPEPosterior, load_fmpe
from inference.posterior.fmpe.method import TRAIN, FMPEOptions, build_model, fit_fmpe, flow_matching_loss
from inference.posterior.fmpe.network import SOLVERS, VectorFieldNet

__all__ = [
    "SOLVERS",
    "TRAIN",
    "FMPEEstimator",
    "FMPEOptions",
    "FMPEPosterior",
    "VectorFieldNet",
    "build_model",
    "fit_fmpe",
    "flow_matching_loss",
    "load_fmpe",
]
