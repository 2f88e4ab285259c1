"""Simulators registered by name: ``simulators.get(name, **options)`` and ``simulators.names()``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from simulators.protocol import Simulator

_REGISTRY: dict[str, Callable[..., Simulator]] = {}


class UnknownSimulatorError(ValueError):
    """Raised for an unknown simulator name or option; the message lists the valid choices."""


def register(name: str, factory: Callable[..., Simulator]) -> None:
    """Register a simulator factory (a class or a function taking keyword options)."""
    if name in _REGISTRY:
        raise ValueError(f"simulator {name!r} is already registered")
    _REGISTRY[name] = factory


def names() -> list[str]:
    """The names of all registered simulators, sorted."""
    return sorted(_REGISTRY)


def options(name: str) -> dict[str, Any]:
    """The keyword options a simulator accepts, with their defaults."""
    factory = _lookup(name)
    params = inspect.signature(factory).parameters
    return {
        k: (None if p.default is inspect.Parameter.empty else p.default)
        for k, p in params.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY or p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    }


def get(name: str, **opts: Any) -> Simulator:
    """Build a registered simulator.

    Arguments:
        name: a registered name (see :func:`names`).
        **opts: simulator options, e.g. ``variant="cumulative"`` for the arm.

    Raises:
        UnknownSimulatorError: for an unknown name or option, listing the valid ones.

    Example:
        >>> import simulators
        >>> sim = simulators.get("arm")
        >>> sim.param_names
        ('rail', 'angle1', 'angle2', 'angle3')
    """
    factory = _lookup(name)
    valid = options(name)
    unknown = sorted(set(opts) - set(valid))
    if unknown:
        raise UnknownSimulatorError(
            f"unknown option {unknown[0]!r} for simulator {name!r}; valid options: "
            + (", ".join(f"{k} (default {v!r})" for k, v in valid.items()) or "none")
        )
    return factory(**opts)


def _lookup(name: str) -> Callable[..., Simulator]:
    if name not in _REGISTRY:
        raise UnknownSimulatorError(f"unknown simulator {name!r}; valid names: {', '.join(names())}")
    return _REGISTRY[name]
