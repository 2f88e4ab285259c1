"""A user's own model with an exact posterior: positive parameters observed through a noisy linear map of their logs.

    log theta ~ N(m0, s0^2 I) (a LogNormal prior on each of 3 parameters)
    x = A log theta + N(0, sigma^2 I)                          (4 observations)

The posterior of u = log theta is Gaussian with precision P = I / s0^2 + A^T A / sigma^2 and mean
P^{-1} (A^T x / sigma^2 + m0 / s0^2); exact draws of theta are exp of its draws. zoo uses it as the model with an exact
posterior that is not a built-in (benchmarks/defaults.py, tests), and docs/own-simulator.md as an example.

    zoo simulate --simulator docs/examples/lognormal_linear.py:simulator -n 10000 --out table.h5
"""

import torch
from torch.distributions import LogNormal

import simulators

A = torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, -0.5], [0.5, 0.0, 1.0], [1.0, 1.0, 1.0]])
M0, S0, SIGMA = 0.0, 0.5, 0.2


def forward(theta: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """x = A log(theta) + noise, batched: theta (N, 3) -> x (N, 4)."""
    u = theta.log()
    noise = torch.randn(*u.shape[:-1], A.shape[0], generator=generator, dtype=u.dtype)
    return u @ A.T.to(u) + SIGMA * noise


def simulator(noise: float = SIGMA) -> simulators.FunctionSimulator:
    """The simulator (a factory, so that ``--simulator FILE:simulator --sim-option noise=...`` works)."""
    if noise != SIGMA:
        raise ValueError(f"this example's exact posterior is written for noise {SIGMA}")
    prior = [LogNormal(M0, S0)] * 3
    return simulators.from_function(forward, prior, param_names=("k1", "k2", "k3"), name="lognormal-linear")


def exact_posterior(x_o: torch.Tensor, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """n exact posterior draws of theta for each observation x_o (*, 4): shape (n, *, 3)."""
    a = A.double()
    precision = torch.eye(3, dtype=torch.float64) / S0**2 + a.T @ a / SIGMA**2
    cov = torch.linalg.inv(precision)
    mean = (x_o.double() @ a / SIGMA**2 + M0 / S0**2) @ cov.T
    eps = torch.randn(n, *x_o.shape[:-1], 3, generator=generator, dtype=torch.float64)
    return (mean + eps @ torch.linalg.cholesky(cov).T).exp().to(x_o.dtype)


def noise_free(theta: torch.Tensor) -> torch.Tensor:
    """A log(theta): the observation without noise (for the re-simulation error)."""
    return theta.log() @ A.T.to(theta)
