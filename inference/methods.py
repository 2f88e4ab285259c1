"""The method interface every posterior method plugs into: a registry, ``fit`` and ``load``.

A *method* is registered once with :func:`register_method` and is then reachable by name from Python
(``inference.fit(sim, method="abc", budget=...)``) and from the command line (``zoo infer --method abc``,
``zoo diagnose --method abc``). The shapes (lampe-style, see ARCHITECTURE.md)::

    fit(simulator, *, method, budget, options, generator, progress) -> Estimator
    Estimator.posterior(x_o) -> Posterior            # x_o always explicit, shape (*batch, *obs_shape)
    Posterior.sample(n, *, generator) -> Tensor      # (n, *batch, D), sample dimension first
    Posterior.log_prob(theta) -> Tensor              # (*sample, *batch, D) -> (*sample, *batch), if has_log_prob
    Estimator.save(dir) / inference.load(dir)        # versioned directory (inference.estimator_dir)

Optional capabilities of a ``Posterior``, discovered with ``hasattr`` (as for simulators):

- ``sample_with_stats(n, *, generator) -> (theta, stats)``: the draws plus per-draw statistics, a dict of tensors
  shaped ``(n, *batch)`` (e.g. ABC distances, NUTS step sizes) that go to the ``sample_stats`` group of a result
  file. Scalar diagnostics per observation (e.g. R-hat) may be shaped ``(*batch)`` or ``(*batch, D)``.
- ``n_chains: int``: the ``n`` draws are ``n_chains`` chains of ``n // n_chains`` draws each, chain-major.

and of an ``Estimator``: ``misspecification(x_o) -> (distance, p_value)``, a score of how unlike the training
simulations each observation is (:mod:`inference.posterior.misspecification`).

:func:`inference.estimator_for` (:mod:`inference.resolve`) is the one resolution of "which estimator" that
``zoo infer``, ``zoo diagnose`` and ``zoo train`` share: a saved directory, a shipped estimator, a shipped recipe
retrained, or a fresh fit.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

import simulators
from inference.estimator_dir import EstimatorFiles, read_header
from inference.options import UnknownOptionError, build_options
from simulators import Registry, Simulator, specs


@runtime_checkable
class Posterior(Protocol):
    """A posterior for a fixed batch of observations ``x_o`` of shape ``(*batch, *obs_shape)``.

    Attributes:
        has_log_prob: whether :meth:`log_prob` is available.
    """

    has_log_prob: bool

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` samples per observation, shape ``(n, *batch, D)``."""
        ...

    def log_prob(self, theta: torch.Tensor) -> torch.Tensor:
        """log q(theta | x_o) for ``theta`` of shape ``(*sample, *batch, D)``; returns ``(*sample, *batch)``."""
        ...


@runtime_checkable
class Estimator(Protocol):
    """A fitted posterior method: turns observations into posteriors.

    Attributes:
        method: the registered method name, e.g. ``"abc"``.
        simulator: the simulator it was fitted for (its ``name`` and ``options`` are saved).
        options: the method's frozen options dataclass.
        budget: the simulation budget it was fitted with.
    """

    method: str
    simulator: Simulator
    options: Any
    budget: int | None

    def posterior(self, x_o: torch.Tensor) -> Posterior:
        """The posterior for observations ``x_o`` of shape ``(*batch, *obs_shape)``."""
        ...

    def save(self, directory: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the estimator to a versioned directory (see :func:`save_estimator`); returns the path."""
        ...


FitFn = Callable[..., Estimator]
"""``fit_fn(simulator, *, budget, options, generator, progress) -> Estimator``."""
LoadFn = Callable[[EstimatorFiles], Estimator]
"""``load_fn(files: EstimatorFiles) -> Estimator``."""


@dataclass(frozen=True)
class MethodSpec:
    """A registry entry: how to fit, how to load, and the options dataclass of one method."""

    name: str
    fit_fn: FitFn
    load_fn: LoadFn
    options_cls: type


class UnknownMethodError(UnknownOptionError):
    """Raised for an unknown method name or option; the message lists the valid choices."""


_METHODS: Registry[MethodSpec] = Registry("method", UnknownMethodError)


def register_method(name: str, fit_fn: FitFn, load_fn: LoadFn, options_cls: type) -> None:
    """Register a posterior method under ``name``.

    Arguments:
        name: the name used by ``fit(..., method=name)`` and ``zoo infer --method name``.
        fit_fn: ``fit_fn(simulator, *, budget, options, generator, progress) -> Estimator``; ``options`` is an
            instance of ``options_cls``.
        load_fn: ``load_fn(files) -> Estimator`` rebuilding the estimator from :class:`EstimatorFiles`.
        options_cls: a frozen dataclass whose defaults work; trained methods nest ``train: TrainConfig``.

    Raises:
        ValueError: if ``name`` is taken or ``options_cls`` is not a dataclass.
    """
    if not dataclasses.is_dataclass(options_cls):
        raise ValueError(f"options_cls for method {name!r} must be a dataclass, got {options_cls!r}")
    _METHODS.register(name, MethodSpec(name, fit_fn, load_fn, options_cls))


def methods() -> list[str]:
    """The names of all registered posterior methods, sorted."""
    return _METHODS.names()


def method_spec(name: str) -> MethodSpec:
    """The registry entry of ``name``.

    Raises:
        UnknownMethodError: for an unknown name, listing the registered ones.
    """
    return _METHODS.get(name)


def make_options(method: str, options: Any = None) -> Any:
    """Turn ``None``, a dict or an options instance into the method's options dataclass.

    Dict keys may name nested settings with a dot (``"train.lr"``) or, where unambiguous, plainly (``"lr"``); see
    :func:`inference.options.build_options`. Unknown keys and values of the wrong type raise one-line errors.
    """
    try:
        return build_options(method_spec(method).options_cls, options, owner=f"method {method!r}")
    except UnknownOptionError as e:
        raise UnknownMethodError(str(e)) from None


def fit(
    simulator: Simulator | None,
    *,
    method: str,
    budget: int | None = None,
    options: Any = None,
    generator: torch.Generator | None = None,
    progress: bool = True,
    simulations: tuple[torch.Tensor, torch.Tensor] | None = None,
    param_names: tuple[str, ...] | list[str] | None = None,
) -> Estimator:
    """Fit a posterior method to a simulator, or to a table of simulations you already have.

    Arguments:
        simulator: the forward model (e.g. ``simulators.get("arm")``); ``None`` with ``simulations`` (the estimator
            then samples posteriors but cannot re-simulate).
        method: a registered name (see :func:`methods`).
        budget: the simulation budget. Amortized methods train on this many simulations; ABC spends this many per
            posterior query; methods that simulate nothing (NUTS) record it. With ``simulations``: their number.
        options: the method's options dataclass, a dict of its fields, or ``None`` for the defaults.
        generator: source of randomness for training.
        progress: show progress bars.
        simulations: a table ``(theta (N, D), x (N, *obs_shape))`` to train on (methods that train: cinn, fmpe, inn).
        param_names: the parameter names of a table without a simulator (default ``theta0, theta1, ...``).

    Returns:
        The fitted :class:`Estimator`.

    Example:
        >>> import simulators, inference
        >>> est = inference.fit(simulators.get("gaussian-mixture"), method="abc", budget=10_000, progress=False)
        >>> est.method
        'abc'
    """
    spec = method_spec(method)
    if budget is not None and (isinstance(budget, bool) or int(budget) != budget or budget <= 0):
        raise ValueError(f"budget must be a positive integer number of simulations, got {budget!r}")
    opts = make_options(method, options)
    kw: dict[str, Any] = {}
    if simulations is not None:
        if "simulations" not in inspect.signature(spec.fit_fn).parameters:
            trains = [m for m in methods() if "simulations" in inspect.signature(method_spec(m).fit_fn).parameters]
            raise ValueError(f"method {method!r} cannot train from a table of simulations; use {', '.join(trains)}")
        simulator, kw["simulations"] = check_table(simulator, simulations, param_names)
        budget = len(kw["simulations"][0])
    elif simulator is None:
        raise ValueError("give a simulator, or a table of simulations (simulations=(theta, x), --simulations FILE)")
    return spec.fit_fn(
        simulator,
        budget=None if budget is None else int(budget),
        options=opts,
        generator=generator,
        progress=progress,
        **kw,
    )


def check_table(
    simulator: Simulator | None, simulations: tuple[Any, Any], param_names: Any
) -> tuple[Simulator, tuple[torch.Tensor, torch.Tensor]]:
    """Check a table of simulations against the simulator, or make a detached simulator from it (names, shapes).

    Returns the simulator and the table as float32 tensors; a one-line ``ValueError`` for a table that does not fit.
    """
    theta, x = (torch.as_tensor(t, dtype=torch.float32) for t in simulations)
    if theta.ndim != 2 or len(theta) != len(x) or len(theta) == 0:
        raise ValueError(
            f"simulations must be theta (N, D) and x (N, ...) with N >= 1, got {tuple(theta.shape)} and "
            f"{tuple(x.shape)}"
        )
    simulators.check_finite(theta, "simulations theta")
    simulators.check_finite(x, "simulations x")
    if simulator is None:
        names = list(param_names) if param_names is not None else [f"theta{i}" for i in range(theta.shape[1])]
        if len(names) != theta.shape[1]:
            raise ValueError(f"{len(names)} param_names for a table of {theta.shape[1]} parameters")
        info = {"name": "table", "param_names": names, "obs_shape": list(x.shape[1:]), "record": {"kind": "table"}}
        reason = "trained from a table without a simulator; pass --simulator to re-simulate"
        return specs.DetachedSimulator(info, reason), (theta, x)
    if theta.shape[1] != len(simulator.param_names):
        raise ValueError(
            f"the table has {theta.shape[1]} parameters, {simulator.name} has {len(simulator.param_names)}"
        )
    simulators.validate_observation(simulator, x, "simulations x")
    return simulator, (theta, x)


def read_estimator(
    directory: str | os.PathLike, *, trust_code: bool = False, simulator: Simulator | None = None
) -> EstimatorFiles:
    """Read an estimator directory: its method, simulator and options rebuilt, and its tensors.

    The simulator is rebuilt from the directory's record (:mod:`simulators.specs`): a registered name or an installed
    plugin always, a user's module or file only with ``trust_code`` (loading a directory must not run code it names).
    Where it cannot be rebuilt, the estimator gets a :class:`simulators.specs.DetachedSimulator` (names and shapes:
    enough to sample) and what needs the simulator says in one line what is missing.

    Arguments:
        directory: the estimator directory.
        trust_code: import the user's module or file the directory names for its simulator.
        simulator: the simulator to use instead (checked against the recorded names and shapes).

    Raises:
        FileNotFoundError: if the directory or its ``estimator.json`` is missing.
        ValueError: for a corrupt or foreign directory, an unsupported version, an unknown method, or a ``simulator``
            that does not match the recorded one.
    """
    header, tensors = read_header(directory)
    spec = method_spec(header["method"])
    info = header["simulator"]
    sim = _simulator_of(info, trust_code=trust_code, simulator=simulator)
    return EstimatorFiles(
        directory=Path(directory),
        method=spec.name,
        simulator=sim,
        options=make_options(spec.name, header.get("options") or {}),
        budget=header.get("budget"),
        config=dict(header.get("config") or {}),
        tensors=tensors,
    )


def _simulator_of(info: dict[str, Any], *, trust_code: bool, simulator: Simulator | None) -> Simulator:
    options = dict(info.get("options") or {})
    if simulator is not None:
        for key in ("param_names", "obs_shape"):
            if key in info and list(info[key]) != list(getattr(simulator, key)):
                raise ValueError(
                    f"the simulator given has {key} {tuple(getattr(simulator, key))}, the estimator was trained for "
                    f"{tuple(info[key])}"
                )
        return simulator
    rec = info.get("record") or {"kind": "registry", "name": info.get("name")}
    try:
        return specs.rebuild(rec, options, trust_code=trust_code)
    except (specs.SimulatorUnavailable, simulators.UnknownSimulatorError) as e:
        if "param_names" not in info or "obs_shape" not in info:
            raise
        return specs.DetachedSimulator(info, str(e).splitlines()[0])


def load(directory: str | os.PathLike, *, trust_code: bool = False, simulator: Simulator | None = None) -> Estimator:
    """Rebuild a saved estimator from its directory, or a shipped estimator by name.

    Arguments:
        directory: a directory written by ``Estimator.save``, or the name of a shipped estimator
            (``zoo.estimators.names()``, e.g. ``"arm-cinn"``).
        trust_code: rebuild a simulator that is a user's module or file (see :func:`read_estimator`).
        simulator: the simulator to use instead of rebuilding it.

    Returns:
        The estimator, ready for ``posterior(x_o)``.

    Raises:
        FileNotFoundError / ValueError: for a missing, corrupt or foreign directory (one-line messages); for a
            shipped estimator the message says to retrain it (``--retrain``).
    """
    from zoo import estimators as shipped  # names -> directories of the shipped estimators

    name = os.fspath(directory)
    if shipped.is_shipped(name) and not Path(name).exists():
        return load_shipped(name)
    files = read_estimator(directory, trust_code=trust_code, simulator=simulator)
    return method_spec(files.method).load_fn(files)


def load_shipped(name: str) -> Estimator:
    """The shipped estimator ``name`` from the package, whatever the working directory holds (a folder of the same
    name there is what :func:`load` would read instead).

    Raises:
        FileNotFoundError / ValueError: its files are missing or corrupt (the message says to retrain it).
    """
    from zoo import estimators as shipped

    try:
        files = read_estimator(shipped.get(name).directory)
        return method_spec(files.method).load_fn(files)
    except (FileNotFoundError, ValueError) as e:
        raise type(e)(
            f"shipped estimator {name!r} is unusable: {e}; reinstall zoo or train afresh with --retrain"
        ) from e
