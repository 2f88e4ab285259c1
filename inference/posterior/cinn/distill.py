"""Distilling a flow-matching posterior into the conditional INN: FMPE's accuracy at one inverse pass per draw.

A trained FMPE estimator (the *teacher*, :mod:`inference.posterior.fmpe`) defines a deterministic map from noise to
posterior draws, its ODE solve ``z -> theta_T(z; x)``. The cINN (the *student*) is an invertible map of the same
noise, ``theta_S = f^{-1}(z; phi(x))``, so it can learn the teacher's map directly: for the training simulations'
observations x and fresh noise z, the student regresses the teacher's draws (mean squared error in the student's
standardized parameters), next to a small weight of its own maximum-likelihood loss on the simulations, which keeps
its mass on the posterior's support where the regression leaves it loose. The student then samples at coupling-flow
speed (one inverse pass), with the teacher's accuracy as far as it matches the map.

The teacher's draws are computed once, before training: ``teacher_draws`` noise vectors per training simulation,
solved with ``teacher_steps`` RK4 steps, and the held-out simulations get one each for validation.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from inference.networks.coupling import Permutation
from simulators import Simulator

_CHUNK = 50_000  # teacher draws per ODE solve


@dataclass
class TeacherPairs:
    """Noise and the teacher's draws for it, in the student's standardized parameters.

    Attributes:
        index: the row of the training table whose observation each pair belongs to, (N,).
        z: the noise, (N, D).
        u: the teacher's draw for ``z``, standardized like the student's parameters, (N, D).
    """

    index: torch.Tensor
    z: torch.Tensor
    u: torch.Tensor


def load_teacher(source: str | os.PathLike, simulator: Simulator):
    """The FMPE estimator at ``source`` (a directory or a shipped name), checked against ``simulator``.

    Raises:
        ValueError: it is not an FMPE estimator, or it was trained for another simulator or parameter dimension; or
            the simulator is set-valued (distillation takes single observations).
    """
    import inference
    import simulators

    if simulators.is_set_valued(simulator):
        raise ValueError("teacher: distillation takes simulators of single observations, not sets")
    teacher = inference.load(source)
    if teacher.method != "fmpe":
        raise ValueError(f"teacher: {source} is a {teacher.method!r} estimator; the teacher must be an 'fmpe' one")
    ours = (simulator.name, dict(getattr(simulator, "options", {}) or {}))
    theirs = (teacher.simulator.name, dict(getattr(teacher.simulator, "options", {}) or {}))
    if ours != theirs:
        raise ValueError(f"teacher: {source} was trained for {theirs[0]} {theirs[1]}, not {ours[0]} {ours[1]}")
    return teacher


@torch.no_grad()
def teacher_pairs(
    teacher, student, x: torch.Tensor, draws: int, steps: int, generator: torch.Generator, progress: bool
) -> TeacherPairs:
    """``draws`` noise vectors per observation of ``x`` (N, *obs) and the teacher's RK4 draws for them."""
    index = torch.arange(len(x)).repeat(draws)
    z = torch.randn(len(index), student.dim, generator=generator)
    u = torch.empty_like(z)
    tm = teacher.model
    bar = tqdm(total=len(index), desc="teacher draws", disable=not progress, unit="draw")
    for i in range(0, len(index), _CHUNK):
        rows = index[i : i + _CHUNK]
        h = tm.summarize(x[rows].to(tm.theta_mean))
        theta = tm.to_theta(tm.solve(z[i : i + _CHUNK], tm.condition_terms(h), 0.0, 1.0, "rk4", steps, 0.0, 0.0))
        u[i : i + _CHUNK] = student.standardize(theta.to(student.theta_mean))[0]
        bar.update(len(rows))
    bar.close()
    return TeacherPairs(index, z, u)


def aligned_noise(student, z: torch.Tensor) -> torch.Tensor:
    """The student's latent for the teacher's noise ``z``: ``z`` through the student's fixed permutations in forward
    order, so that the student's flow at initialization (identity couplings) maps it back onto ``z`` itself.

    Regressing the teacher's map from the student's raw latent would ask the couplings to undo the permutations
    first, which gradient descent does not find: on a 2-D Gaussian posterior, with permutations that swap the two
    coordinates overall, the loss stalls near the variance of the draws (the student ignores the noise), while
    aligned it falls below 1e-3 (tests/inference/posterior/test_distill.py). A permutation of N(0, I) is N(0, I), so
    the student still samples from its own latent.
    """
    for layer in student.flow.layers:
        if isinstance(layer, Permutation):
            z = layer(z)[0]
    return z


def distillation_loss(student, x: torch.Tensor, z: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Mean squared error per parameter dimension between the student's draws f^{-1}(aligned z; phi(x)) and the
    teacher's ``u`` for the noise ``z`` (both standardized)."""
    pred, _ = student.flow.inverse(aligned_noise(student, z), student.summarize(x))
    return (pred - u).square().mean()
