"""Fiber methods registered by name, mirroring the posterior methods: ``register_fiber_method`` / ``fiber_methods``.

A fiber method draws samples x~ with phi(x~) ~= phi(x) for targets x. It is registered once with its options
dataclass and is then reachable from Python (``inference.fibers.sample_fibers(..., method=name)``) and from the
command line (``zoo fiber --method name --option key=value``). Its sampling function has the shape::

    sample_fn(subject, x, n, *, prior, options, data, generator, batch_size, progress) -> FiberDraws

with ``x`` the targets (B, *shape), ``prior`` a zoo prior (or ``None`` for methods that need none), ``data`` a
function ``data(n, generator) -> images`` for methods that train on data, and the result a :class:`FiberDraws`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from inference.options import UnknownOptionError, build_options
from simulators import Registry


@dataclass
class FiberDraws:
    """What a fiber method returns: samples for every target, their fiber losses and the method's traces.

    Attributes:
        samples: fiber samples in data space, shape (n, B, *shape).
        fiber_loss: ||phi(x~) - phi(x)||^2 of each sample, shape (n, B).
        traces: per-step cost terms (e.g. ``terminal``, ``control``, ``score``), each (n, B, step).
        gamma: the guidance strength per step, shape (step,), where the method has one.
        info: what the method wants recorded with the result (e.g. its training losses).
    """

    samples: torch.Tensor
    fiber_loss: torch.Tensor
    traces: dict[str, torch.Tensor] = field(default_factory=dict)
    gamma: torch.Tensor | None = None
    info: dict[str, Any] = field(default_factory=dict)


SampleFn = Callable[..., FiberDraws]


@dataclass(frozen=True)
class FiberMethodSpec:
    """A registry entry: the sampling function and options of one fiber method.

    Attributes:
        name: the method name.
        sample_fn: see the module docstring.
        options_cls: a frozen dataclass whose defaults work.
        needs_prior: whether the method guides a generative prior (``--prior``).
        description: one line for ``zoo list`` and ``zoo fiber --help``.
    """

    name: str
    sample_fn: SampleFn
    options_cls: type
    needs_prior: bool
    description: str


class UnknownFiberMethodError(UnknownOptionError):
    """An unknown fiber method or option; the message lists the valid ones."""


_FIBER_METHODS: Registry[FiberMethodSpec] = Registry("fiber method", UnknownFiberMethodError)


def register_fiber_method(
    name: str, sample_fn: SampleFn, options_cls: type, *, needs_prior: bool, description: str
) -> None:
    """Register a fiber method under ``name`` (see the module docstring for ``sample_fn``).

    Raises:
        ValueError: ``name`` is taken or ``options_cls`` is not a dataclass.
    """
    if not dataclasses.is_dataclass(options_cls):
        raise ValueError(f"options_cls for fiber method {name!r} must be a dataclass, got {options_cls!r}")
    _FIBER_METHODS.register(name, FiberMethodSpec(name, sample_fn, options_cls, needs_prior, description))


def fiber_methods() -> list[str]:
    """The names of the registered fiber methods, sorted."""
    return _FIBER_METHODS.names()


def fiber_method_spec(name: str) -> FiberMethodSpec:
    """The registry entry of ``name``; an unknown name raises a one-line error listing the valid ones."""
    return _FIBER_METHODS.get(name)


def make_fiber_options(method: str, options: Any = None) -> Any:
    """A fiber method's options from ``None``, a dict (dotted keys for nested settings) or an instance."""
    try:
        return build_options(fiber_method_spec(method).options_cls, options, owner=f"fiber method {method!r}")
    except UnknownOptionError as e:
        raise UnknownFiberMethodError(str(e)) from None
