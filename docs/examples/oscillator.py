"""A damped oscillator, as a user would bring it: a NumPy function of one parameter vector, and constrained priors.

    x(t) = A exp(-gamma t) cos(omega t) + noise,   t = 0, 0.5, ..., 9.5   (20 samples)
    omega ~ LogNormal(log 1.5, 0.3)      (angular frequency, > 0)
    gamma ~ Gamma(2, 10)                 (damping rate, > 0; mean 0.2)
    A     ~ Uniform(0.5, 2)              (amplitude)

It stands for an external program (one run per parameter vector), so it is wrapped with ``vectorized=False``.
docs/own-simulator.md uses it from Python and from the command line::

    zoo simulate --simulator docs/examples/oscillator.py:simulator -n 20000 --out oscillator.h5
"""

import numpy as np
import torch
from torch.distributions import Gamma, LogNormal, Uniform

import simulators

T = np.arange(20) * 0.5
NOISE = 0.05


def oscillate(theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One run: theta = (omega, gamma, A) -> 20 noisy samples of the damped oscillation."""
    omega, gamma, amplitude = theta
    return amplitude * np.exp(-gamma * T) * np.cos(omega * T) + NOISE * rng.normal(size=T.shape)


def simulator() -> simulators.FunctionSimulator:
    """The zoo simulator (a factory: ``--simulator docs/examples/oscillator.py:simulator``)."""
    prior = [LogNormal(float(np.log(1.5)), 0.3), Gamma(2.0, 10.0), Uniform(0.5, 2.0)]
    return simulators.from_function(
        oscillate, prior, param_names=("omega", "gamma", "A"), name="oscillator", vectorized=False
    )


if __name__ == "__main__":
    sim = simulator()
    x = sim.simulate(torch.tensor([1.5, 0.2, 1.0]), generator=torch.Generator().manual_seed(0))
    print(sim.param_names, sim.obs_shape, x[:5])
