"""Checks shared by the fiber pipeline and NDTM: refuse a prior / subject / input combination before any sampling."""

from __future__ import annotations

import torch

from zoo.priors import DiffusionPrior, Prior
from zoo.subjects import Subject

__all__ = ["check_compatible", "check_subject", "input_range"]


def check_compatible(prior: Prior, subject: Subject, x: torch.Tensor | None = None) -> None:
    """Refuse, before any sampling, a prior / subject / input combination that cannot work.

    Checks: the prior is a diffusion / flow-matching prior; the input has the prior's sample shape (and the
    subject's input shape where recorded); prior and subject record the same input range; the subject's output
    is a floating tensor differentiable in its input with a gradient that is not identically zero.

    Raises:
        ValueError: with a one-line reason.
    """
    if not isinstance(prior, DiffusionPrior):
        raise ValueError(f"NDTM needs a diffusion or flow-matching prior, got {type(prior).__name__}")
    shape = tuple(prior.shape)
    if subject.input_shape is not None and tuple(subject.input_shape) != shape:
        raise ValueError(f"the subject takes inputs of shape {tuple(subject.input_shape)}, the prior makes {shape}")
    if x is not None and tuple(x.shape[1:]) != shape:
        raise ValueError(f"input images must have shape (B, {', '.join(map(str, shape))}), got {tuple(x.shape)}")
    r_p, r_s = input_range(prior), input_range(subject)
    if r_p is not None and r_s is not None and r_p != r_s:
        raise ValueError(f"the prior makes data in range {list(r_p)} but the subject expects {list(r_s)}")
    probe = x[:1] if x is not None else torch.rand(1, *shape, device=prior.device)
    check_subject(subject, probe)


def input_range(model: DiffusionPrior | Subject | None) -> tuple[float, float] | None:
    """The input range ``(lo, hi)`` a zoo prior or subject records in its metadata (``None``: none recorded)."""
    r = None if model is None else model.meta.get("input", {}).get("range")
    return None if r is None else (float(r[0]), float(r[1]))


def check_subject(subject: Subject, x: torch.Tensor) -> None:
    """Refuse inputs of the wrong shape and subjects whose features are not differentiable in the input.

    Arguments:
        subject: the feature map phi.
        x: one or more inputs, shape (B, *shape) (the first is probed).

    Raises:
        ValueError: with a one-line reason.
    """
    if subject.input_shape is not None and tuple(x.shape[1:]) != tuple(subject.input_shape):
        want = ", ".join(map(str, subject.input_shape))
        raise ValueError(f"input images must have shape (B, {want}) for this subject, got {tuple(x.shape)}")
    probe = x[:1].detach().clone().requires_grad_(True)
    try:
        h = subject(probe)
    except Exception as e:  # the subject's own failure, reported in one line
        raise ValueError(f"the subject failed on an input of shape {tuple(probe.shape)}: {e}") from e
    if not torch.is_tensor(h) or not h.is_floating_point() or not h.requires_grad:
        raise ValueError("the subject's output is not differentiable in its input; choose a differentiable output")
    (g,) = torch.autograd.grad(h.float().pow(2).sum(), probe, allow_unused=True)
    if g is None or not bool(torch.isfinite(g).all()) or not bool((g != 0).any()):
        raise ValueError("the subject's output has no (finite, non-zero) gradient in its input; it cannot be guided")
