"""Distilling a flow-matching posterior into the conditional INN: FMPE's accuracy at one inverse pass per draw.

A trained FMPE estimator (the *teacher*, :mod:`inference.posterior.fmpe`) defines a deterministic map from noise to
posterior draws, its ODE solve ``z -> theta_T(z; x)``. The cINN (the *student*) is an invertible map of the same
noise, ``theta_S = f^{-1}(z; phi(x))``, so it can learn the teacher's map directly: for the training simulations'
observations x and fresh noise z, the student regresses the teacher's draws (mean squared error in the student's
standardized parameters), next to the teacher's pull on its draws (:func:`teacher_pull`) and a small weight of its
own maximum-likelihood loss on the simulations, which keep its mass on the posterior's support where the regression
leaves it loose. The student then samples at coupling-flow
speed (one inverse pass), with the teacher's accuracy as far as it matches the map.

The teacher's draws are computed once, before training: ``teacher_draws`` noise vectors per training simulation,
solved with ``teacher_steps`` Euler steps, and the held-out simulations get one each for validation. Euler, not
RK4: on the arm's near-degenerate posterior the field is stiff at t = 1, which RK4 evaluates and Euler never does;
the teacher's draws are then sharper for half the field evaluations (mean re-simulation error 0.0029 with 32 Euler
steps, 0.0075 with 16 RK4 steps = 64 evaluations: docs/amortized.md, the solver table).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from inference.networks.coupling import Permutation
from inference.posterior.cinn.options import CINNOptions
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
    """``draws`` noise vectors per observation of ``x`` (N, *obs) and the teacher's Euler draws for them."""
    index = torch.arange(len(x)).repeat(draws)
    z = torch.randn(len(index), student.dim, generator=generator)
    u = torch.empty_like(z)
    tm = teacher.model
    bar = tqdm(total=len(index), desc="teacher draws", disable=not progress, unit="draw")
    for i in range(0, len(index), _CHUNK):
        rows = index[i : i + _CHUNK]
        h = tm.summarize(x[rows].to(tm.theta_mean))
        theta = tm.to_theta(tm.solve(z[i : i + _CHUNK], tm.condition_terms(h), 0.0, 1.0, "euler", steps, 0.0, 0.0))
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


def distillation_loss(
    student,
    x: torch.Tensor,
    z: torch.Tensor,
    u: torch.Tensor,
    *,
    teacher=None,
    pull_time: float = CINNOptions.pull_time,
) -> dict[str, torch.Tensor]:
    """The student's distillation losses for observations ``x``, noise ``z`` and the teacher's draws ``u``.

    Returns:
        ``"distill"``: the mean squared error per parameter dimension between the student's draws
        ``f^{-1}(aligned z; phi(x))`` and ``u`` (both standardized); with ``teacher`` (an FMPE estimator) also
        ``"pull"``: :func:`teacher_pull` of those draws.
    """
    pred, _ = student.flow.inverse(aligned_noise(student, z), student.summarize(x))
    out = {"distill": (pred - u).square().mean()}
    if teacher is not None:
        out["pull"] = teacher_pull(student, teacher, x, pred, pull_time)
    return out


def teacher_pull(student, teacher, x: torch.Tensor, pred: torch.Tensor, pull_time: float) -> torch.Tensor:
    """A loss that pulls the student's standardized draws ``pred`` onto the teacher's posterior.

    The teacher's field near the end of its path is a denoiser: on the OT path ``theta_t = t theta_1 + (1 - t) z``,
    ``theta_t + (1 - t) v(theta_t, t)`` is the teacher's estimate of E[theta_1 | theta_t], the nearest posterior mass
    at the noise scale ``1 - t``. Taking each student draw as ``theta_t`` at ``t = 1 - pull_time``, the loss is the
    mean squared distance (per dimension, in the student's standardized units) to that estimate, with the estimate
    held fixed, so its gradient moves the draw along the teacher's field: toward the posterior and nowhere else. It
    acts where the regression alone is weakest, across a near-degenerate posterior's thin directions (the
    noise-free arm's: docs/amortized.md).
    """
    tm = teacher.model
    with torch.no_grad():
        v = student.theta_std * pred.detach() + student.theta_mean  # unconstrained parameters, student's units
        v_t = (v - tm.theta_mean) / tm.theta_std
        t = torch.full(v_t.shape[:-1], 1.0 - pull_time, dtype=v_t.dtype, device=v_t.device)
        step = pull_time * tm.velocity(v_t, t, tm.summarize(x.to(tm.theta_mean))) * tm.theta_std / student.theta_std
    return (pred - (pred.detach() + step)).square().mean()
