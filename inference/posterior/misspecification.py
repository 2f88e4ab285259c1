"""Model-misspecification score: is an observation one the simulator could have produced?

An amortized posterior is only trustworthy for observations that look like its training simulations. Following
Schmitt et al. (2021), the check happens in the space of the learned summaries h = phi(x), where the training
simulations form a compact cloud. The score is the Mahalanobis distance of the observation's summary to the
summaries of held-out simulations,

    d(x_o) = sqrt( (h_o - m)^T S^{-1} (h_o - m) ),        m, S = mean and covariance of h over the reference set,

and its p-value is the fraction of reference simulations at least as far out (an empirical, distribution-free
tail probability: p = (1 + #{d_i >= d(x_o)}) / (1 + N)). A small p flags an observation the simulator (under its
prior) would rarely produce; with p < alpha the false-alarm rate on well-specified observations is at most alpha.
The thesis (sec. 4.4) frames out-of-distribution detection the same way: a hypothesis test whose p-value is the
false-positive rate.

References:
    Schmitt, Bürkner, Köthe, Radev, *Detecting model misspecification in amortized Bayesian inference with neural
    networks*, 2021 (summary-space MMD; the Mahalanobis distance is its Gaussian special case).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch

_JITTER = 1e-6  # relative ridge on the covariance so a degenerate summary dimension cannot blow up S^{-1}


class Misspecification(NamedTuple):
    """The score of a batch of observations.

    Attributes:
        distance: Mahalanobis distance of each summary to the reference summaries, shape (*batch).
        p_value: fraction of reference simulations at least as far out, shape (*batch); small = suspicious.
    """

    distance: torch.Tensor
    p_value: torch.Tensor


class SummaryMahalanobis:
    """Mahalanobis distance of summaries to a reference set of simulated summaries, with empirical p-values.

    Arguments:
        mean: reference mean, shape (C,).
        precision_cholesky: a lower-triangular L with S^{-1} = L L^T, shape (C, C).
        reference: sorted reference distances, shape (N,).

    Example:
        >>> import torch
        >>> h = torch.randn(2000, 3, generator=torch.Generator().manual_seed(0))
        >>> score = SummaryMahalanobis.fit(h)
        >>> float(score(torch.full((1, 3), 10.0)).p_value[0]) < 0.01
        True
    """

    def __init__(self, mean: torch.Tensor, precision_cholesky: torch.Tensor, reference: torch.Tensor) -> None:
        self.mean, self.precision_cholesky, self.reference = mean, precision_cholesky, reference

    @classmethod
    def fit(cls, h: torch.Tensor) -> SummaryMahalanobis:
        """Fit to reference summaries ``h`` of shape (N, C) (held-out simulations, N >= C + 2)."""
        h = h.detach().double()
        if h.ndim != 2 or h.shape[0] < h.shape[1] + 2:
            raise ValueError(f"need reference summaries of shape (N, C) with N >= C + 2, got {tuple(h.shape)}")
        mean = h.mean(0)
        cov = torch.cov(h.T).reshape(h.shape[1], h.shape[1])
        cov = cov + _JITTER * cov.diagonal().mean() * torch.eye(len(cov), dtype=cov.dtype)
        chol = torch.linalg.cholesky(torch.linalg.inv(cov))
        score = cls(mean, chol, torch.zeros(0, dtype=h.dtype))
        score.reference = torch.sort(score.distance(h)).values
        return score

    def distance(self, h: torch.Tensor) -> torch.Tensor:
        """Mahalanobis distance of summaries (*batch, C) -> (*batch)."""
        d = (h.detach().to(self.mean) - self.mean) @ self.precision_cholesky
        return d.square().sum(-1).sqrt()

    def __call__(self, h: torch.Tensor) -> Misspecification:
        """Score summaries of shape (*batch, C)."""
        d = self.distance(h)
        n = len(self.reference)
        beyond = n - torch.searchsorted(self.reference, d.reshape(-1).contiguous(), right=False)
        p = (1.0 + beyond.to(d.dtype)) / (1.0 + n)
        return Misspecification(d.float(), p.reshape(d.shape).float())

    def state(self, prefix: str = "misspecification.") -> dict[str, torch.Tensor]:
        """Named tensors for saving."""
        return {
            prefix + "mean": self.mean,
            prefix + "precision_cholesky": self.precision_cholesky,
            prefix + "reference": self.reference,
        }

    @classmethod
    def from_state(cls, tensors: dict[str, torch.Tensor], prefix: str = "misspecification.") -> SummaryMahalanobis:
        """Rebuild from :meth:`state`'s tensors."""
        return cls(tensors[prefix + "mean"], tensors[prefix + "precision_cholesky"], tensors[prefix + "reference"])


def prior_predictive_check(
    simulator: Any, x_o: torch.Tensor, *, n: int = 2000, generator: torch.Generator | None = None
) -> Misspecification:
    """Is each observation one the simulator, under its prior, could have produced? For methods without learned
    summaries (``zoo infer --ood-check`` with ABC or NUTS).

    The Mahalanobis distance of the flattened observation to ``n`` prior-predictive simulations: mean and
    covariance from one half of them, the reference distances (and so the p-values) from the other half, so that
    the p-value of a well-specified observation is valid (``P(p <= a) <= a``).

    Arguments:
        simulator: a zoo simulator (``prior``, ``simulate``, ``x_shape``).
        x_o: observations (B, *x_shape).
        n: prior-predictive simulations; raised to 2 (D + 10) for D-dimensional observations.
        generator: randomness of the simulations.
    """
    shape = tuple(x_o.shape[1:])
    d = math.prod(shape)
    n = max(int(n), 2 * (d + 10))
    from simulators.sampling import sample_prior

    theta = sample_prior(simulator.prior, n, generator=generator)
    x = simulator.simulate(theta, generator=generator).reshape(n, -1).float()
    keep = torch.isfinite(x).all(1)
    x = x[keep]
    half = len(x) // 2
    score = SummaryMahalanobis.fit(x[:half])
    score.reference = torch.sort(score.distance(x[half:])).values
    return score(x_o.reshape(len(x_o), -1).float())
