"""The trained FMPE network as an estimator: posteriors for observations, saving and loading.

Saving, loading and the misspecification score are the cINN's (:mod:`inference.posterior.cinn.estimator`): both
are summary-conditioned networks in the same directory format; what differs is how a posterior draws (an ODE solve,
:mod:`inference.posterior.fmpe.network`).
"""

from __future__ import annotations

from typing import Any

import torch

from inference.estimator_dir import EstimatorFiles
from inference.posterior.cinn.estimator import CINNEstimator, CINNPosterior, load_conditioned
from inference.posterior.fmpe.network import VectorFieldNet


class FMPEPosterior(CINNPosterior):
    """The FMPE posterior for a fixed batch of observations (summaries computed once).

    Arguments:
        solve: the ODE settings (``solver``, ``steps``, ``rtol``, ``atol``), from the estimator's options.

    Attributes:
        has_log_prob: ``True``: the density of the flow's ODE (adaptive solve, exact divergence).
    """

    def __init__(self, model: VectorFieldNet, h: torch.Tensor, batch: tuple[int, ...], solve: dict[str, Any]) -> None:
        super().__init__(model, h, batch)
        self.solve = dict(solve)

    @torch.no_grad()
    def sample(
        self, n: int, *, generator: torch.Generator | None = None, solver: str | None = None, steps: int | None = None
    ) -> torch.Tensor:
        """``n`` draws per observation, shape (n, *batch, D); ``solver`` / ``steps`` override the options'."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative integer number of draws, got {n!r}")
        solve = dict(self.solve)
        solve.update({k: v for k, v in (("solver", solver), ("steps", steps)) if v is not None})
        h = self.h.reshape(-1, self.h.shape[-1])
        return self.model.sample_given(n, h, generator=generator, **solve).reshape(n, *self.batch, self.model.dim)

    @torch.no_grad()
    def log_prob(self, theta: torch.Tensor) -> torch.Tensor:
        """log q(theta | x_o) for theta (*sample, *batch, D); returns (*sample, *batch)."""
        if theta.shape[-1] != self.model.dim:
            raise ValueError(f"theta must have shape (*, *batch, {self.model.dim}), got {tuple(theta.shape)}")
        tol = {"rtol": self.solve["rtol"], "atol": self.solve["atol"]}
        return self.model.log_prob_given(theta.to(self.h), self.h, **tol)


class FMPEEstimator(CINNEstimator):
    """A trained flow-matching posterior estimator for one simulator (see :mod:`inference.posterior.fmpe`).

    Attributes:
        method: ``"fmpe"``.
        simulator, options, budget, model, score, info: as for :class:`~inference.posterior.cinn.CINNEstimator`;
            ``model`` is a :class:`VectorFieldNet`.
    """

    method = "fmpe"

    @torch.no_grad()
    def posterior(self, x_o: torch.Tensor) -> FMPEPosterior:
        """The posterior for observations ``x_o`` of shape (*batch, *obs_shape); for sets (*batch, K, *element)."""
        x_o = self.check_observation(x_o)
        o = self.options
        solve = {"solver": o.solver, "steps": o.ode_steps, "rtol": o.rtol, "atol": o.atol}
        return FMPEPosterior(self.model, self.model.summarize(x_o), self._batch(x_o), solve)


def load_fmpe(files: EstimatorFiles) -> FMPEEstimator:
    """Rebuild an :class:`FMPEEstimator` from its directory (see :meth:`FMPEEstimator.save`)."""
    return load_conditioned(files, VectorFieldNet, FMPEEstimator)
