"""Registries by name: one small helper for all of zoo's registries, and the simulator registry built on it.

:class:`Registry` is the one helper every registry in zoo uses (simulators here; posterior methods, fiber methods,
shipped models and shipped estimators above): ``register`` / ``get`` / ``names`` / ``in``, and an error that lists
the valid names. It lives in the lowest layer (``simulators/`` imports nothing of ours) so that every layer above can
use it without an upward import.

Simulators: ``simulators.get(name, **options)`` and ``simulators.names()``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from simulators.protocol import Simulator

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries by name, with errors that list the valid names.

    Arguments:
        kind: what an entry is, for messages (e.g. ``"simulator"``, ``"method"``).
        error: the exception type raised for an unknown name (a ``ValueError`` subclass, so that the CLI reports it
            in one line).
        listing: how the error introduces the valid names (default: the plural of ``kind``).

    Example:
        >>> r = Registry("colour")
        >>> r.register("red", 1)
        >>> r.get("red"), r.names(), "blue" in r
        (1, ['red'], False)
    """

    def __init__(self, kind: str, error: type[ValueError] = ValueError, *, listing: str | None = None) -> None:
        self.kind, self.error, self.listing = kind, error, listing or f"{kind}s"
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> None:
        """Add ``entry`` under ``name``.

        Raises:
            ValueError: ``name`` is empty, not a string, or already taken.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry

    def get(self, name: str) -> T:
        """The entry called ``name``.

        Raises:
            error: for an unknown name, listing the registered ones.
        """
        if not isinstance(name, str) or name not in self._entries:
            raise self.error(f"unknown {self.kind} {name!r}; valid {self.listing}: {', '.join(self.names()) or 'none'}")
        return self._entries[name]

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        """``(name, entry)`` pairs, sorted by name."""
        return ((n, self._entries[n]) for n in self.names())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._entries

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)


class UnknownSimulatorError(ValueError):
    """Raised for an unknown simulator name or option; the message lists the valid choices."""


_SIMULATORS: Registry[Callable[..., Simulator]] = Registry("simulator", UnknownSimulatorError, listing="names")


def register(name: str, factory: Callable[..., Simulator]) -> None:
    """Register a simulator factory (a class or a function taking keyword options)."""
    _SIMULATORS.register(name, factory)


def names() -> list[str]:
    """The names of all registered simulators, including installed plugins (entry points ``zoo.simulators``)."""
    _register_plugins()
    return _SIMULATORS.names()


def options(name: str) -> dict[str, Any]:
    """The keyword options a simulator accepts, with their defaults."""
    _register_plugins()
    factory = _SIMULATORS.get(name)
    params = inspect.signature(_PLUGINS[name].load() if name in _PLUGINS else factory).parameters
    return {
        k: (None if p.default is inspect.Parameter.empty else p.default)
        for k, p in params.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY or p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    }


def get(name: str, **opts: Any) -> Simulator:
    """Build a simulator by name, or from your own code.

    Arguments:
        name: a registered name (see :func:`names`; installed plugins included), ``package.module:factory`` or
            ``path/to/file.py:factory`` (:mod:`simulators.specs`).
        **opts: simulator options, e.g. ``variant="cumulative"`` for the arm (keyword arguments of the factory).

    Raises:
        UnknownSimulatorError: for an unknown name or option, listing the valid ones.

    Example:
        >>> import simulators
        >>> sim = simulators.get("arm")
        >>> sim.param_names
        ('rail', 'angle1', 'angle2', 'angle3')
    """
    from simulators import specs

    if specs.is_code_spec(name):
        return specs.build(name, **opts)
    _register_plugins()
    factory = _SIMULATORS.get(name)
    valid = options(name)
    unknown = sorted(set(opts) - set(valid))
    if unknown:
        raise UnknownSimulatorError(
            f"unknown option {unknown[0]!r} for simulator {name!r}; valid options: "
            + (", ".join(f"{k} (default {v!r})" for k, v in valid.items()) or "none")
        )
    kind = "entry_point" if name in _PLUGINS else "registry"
    try:
        sim = factory(**opts)
    except TypeError as e:  # an option value of the wrong type that the simulator's own checks did not expect
        raise UnknownSimulatorError(f"bad option for simulator {name!r} ({_fmt(opts)}): {e}") from None
    return specs.attach(sim, {"kind": kind, "name": name, "options": dict(opts)})


_PLUGINS: dict[str, Any] = {}  # name -> entry point of an installed plugin


def _register_plugins() -> None:
    """Register the simulators of installed packages (entry points ``zoo.simulators``) once, loaded when used."""
    from simulators import specs

    for plugin, ep in specs.plugins().items():
        if plugin in _SIMULATORS:
            continue
        _PLUGINS[plugin] = ep
        _SIMULATORS.register(plugin, lambda _ep=ep, **opts: _load(_ep)(**opts))


def _load(ep: Any) -> Callable[..., Simulator]:
    """The factory of a plugin's entry point, its result adapted to the interface."""
    from simulators.user import as_simulator

    factory = ep.load()
    return lambda **opts: as_simulator(factory(**opts))


def _fmt(opts: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in opts.items())
