"""The method interface every posterior method plugs into: a registry, ``fit``, ``load`` and ``estimator_for``.

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

:func:`estimator_for` is the one resolution of "which estimator" that ``zoo infer``, ``zoo diagnose`` and
``zoo train`` share: a saved directory, a shipped estimator, a shipped recipe retrained, or a fresh fit.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

import simulators
from inference.estimator_dir import EstimatorFiles, read_header
from inference.options import UnknownOptionError, build_options
from simulators import Registry, Simulator


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
    simulator: Simulator,
    *,
    method: str,
    budget: int | None,
    options: Any = None,
    generator: torch.Generator | None = None,
    progress: bool = True,
) -> Estimator:
    """Fit a posterior method to a simulator.

    Arguments:
        simulator: the forward model (e.g. ``simulators.get("arm")``).
        method: a registered name (see :func:`methods`).
        budget: the simulation budget. Amortized methods train on this many simulations; ABC spends this many per
            posterior query; methods that simulate nothing (NUTS) record it.
        options: the method's options dataclass, a dict of its fields, or ``None`` for the defaults.
        generator: source of randomness for training.
        progress: show progress bars.

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
    return spec.fit_fn(
        simulator,
        budget=None if budget is None else int(budget),
        options=opts,
        generator=generator,
        progress=progress,
    )


def read_estimator(directory: str | os.PathLike) -> EstimatorFiles:
    """Read an estimator directory: its method, simulator and options rebuilt, and its tensors.

    Raises:
        FileNotFoundError: if the directory or its ``estimator.json`` is missing.
        ValueError: for a corrupt or foreign directory, an unsupported version, or an unknown method.
    """
    header, tensors = read_header(directory)
    d = Path(directory)
    spec = method_spec(header["method"])
    sim_info = header["simulator"]
    sim = simulators.get(sim_info.get("name"), **(sim_info.get("options") or {}))
    return EstimatorFiles(
        directory=d,
        method=spec.name,
        simulator=sim,
        options=make_options(spec.name, header.get("options") or {}),
        budget=header.get("budget"),
        config=dict(header.get("config") or {}),
        tensors=tensors,
    )


def load(directory: str | os.PathLike) -> Estimator:
    """Rebuild a saved estimator from its directory, or a shipped estimator by name.

    Arguments:
        directory: a directory written by ``Estimator.save``, or the name of a shipped estimator
            (``zoo.estimators.names()``, e.g. ``"arm-cinn"``).

    Returns:
        The estimator, ready for ``posterior(x_o)``.

    Raises:
        FileNotFoundError / ValueError: for a missing, corrupt or foreign directory (one-line messages); for a
            shipped estimator the message says to retrain it (``--retrain``).
    """
    from zoo import estimators as shipped  # names -> directories of the shipped estimators

    name = os.fspath(directory)
    if shipped.is_shipped(name) and not Path(name).exists():
        try:
            files = read_estimator(shipped.get(name).directory)
            return method_spec(files.method).load_fn(files)
        except (FileNotFoundError, ValueError) as e:
            raise type(e)(
                f"shipped estimator {name!r} is unusable: {e}; reinstall zoo or train afresh with --retrain"
            ) from e
    files = read_estimator(directory)
    return method_spec(files.method).load_fn(files)


class EstimatorChoice:
    """The estimator a pipeline runs with, and where it comes from; a fit runs when :attr:`estimator` is first read.

    Resolving (:func:`estimator_for`) checks the simulator, method and options at once; the estimator itself is
    loaded then, but a fit waits until it is needed, so that a command can check everything else first.

    Attributes:
        simulator: the simulator.
        source: ``"loaded"`` (a directory), ``"shipped"``, ``"retrained"`` (a shipped recipe trained afresh) or
            ``"fitted"``.
        name: the directory or shipped name (``None`` for a fresh fit).
        fit_seconds: time spent fitting (0 when loaded, or not fitted yet).
    """

    def __init__(
        self,
        simulator: Simulator,
        source: str,
        name: str | None = None,
        *,
        estimator: Estimator | None = None,
        fit: Callable[[], Estimator] | None = None,
    ) -> None:
        self.simulator, self.source, self.name = simulator, source, name
        self._estimator, self._fit, self.fit_seconds = estimator, fit, 0.0

    @property
    def estimator(self) -> Estimator:
        """The estimator (fitted now if it has not been)."""
        if self._estimator is None:
            t0 = time.perf_counter()
            self._estimator = self._fit()
            self.fit_seconds = time.perf_counter() - t0
        return self._estimator

    def describe(self) -> str:
        """One line for the user: which estimator, and how to choose another."""
        if self.source == "shipped":
            return f"using the shipped estimator {self.name} (--retrain to train it afresh, --method M for another)"
        if self.source == "loaded":
            return f"using the estimator in {self.name}"
        return f"{self.source} {self.estimator.method} in {self.fit_seconds:.1f} s"


def estimator_for(
    simulator: str | Simulator | None = None,
    *,
    method: str | None = None,
    estimator: str | os.PathLike | None = None,
    budget: int | None = None,
    options: Mapping[str, Any] | Any | None = None,
    simulator_options: Mapping[str, Any] | None = None,
    retrain: bool = False,
    default_method: str = "abc",
    generator: torch.Generator | None = None,
    progress: bool = True,
) -> EstimatorChoice:
    """The one resolution of which estimator to use: saved, shipped, shipped recipe retrained, or fitted.

    In order: ``estimator`` (a directory or a shipped name) is loaded; otherwise, with no ``method``, ``budget`` or
    ``options``, the simulator's shipped estimator is the default (loaded, or trained afresh with its recorded
    method, budget and options when ``retrain``); otherwise ``method`` (default ``default_method``) is fitted. A fit
    runs when the returned choice's ``estimator`` is first read; everything else is checked here.

    Arguments:
        simulator: a simulator or a registered name (not needed with ``estimator``; checked against it if given).
        method: the posterior method.
        estimator: a saved estimator directory or a shipped estimator's name.
        budget: the simulation budget of a fit.
        options: the method's options (a dict or the dataclass).
        simulator_options: options of a simulator given by name.
        retrain: train the shipped default afresh instead of loading it.
        default_method: the method fitted when none is given and there is no shipped default.
        generator: randomness of a fit.
        progress: show progress bars.

    Raises:
        ValueError: contradictory arguments, an unknown simulator, method or option (one line), or whatever
            loading raises.
    """
    from zoo import estimators as shipped

    if estimator is not None:
        est = load(estimator)
        name = simulator if isinstance(simulator, str) else getattr(simulator, "name", None)
        if name is not None and name != est.simulator.name:
            raise ValueError(f"--simulator {name} does not match the estimator's simulator {est.simulator.name}")
        return EstimatorChoice(est.simulator, "loaded", os.fspath(estimator), estimator=est)
    if simulator is None:
        raise ValueError("give a simulator (--simulator NAME) or a saved estimator (--estimator DIR)")
    sim = simulators.get(simulator, **dict(simulator_options or {})) if isinstance(simulator, str) else simulator
    entry = None
    if method is None and budget is None and not options:
        entry = shipped.default_for(sim.name, getattr(sim, "options", {}))
    if entry is not None and not retrain:
        return EstimatorChoice(sim, "shipped", entry.name, estimator=load(entry.name))
    if entry is not None:  # the shipped recipe: its method, budget and recorded options
        method, budget = entry.method, entry.budget
        options = read_estimator(entry.directory).options
    elif retrain:
        raise ValueError(
            f"--retrain applies to a shipped estimator, and there is none for {sim.name} with these options "
            "when --method/--budget/--option are given; drop --retrain"
        )
    method = method or default_method
    method_spec(method)
    options = make_options(method, options)
    if budget is not None and (isinstance(budget, bool) or int(budget) != budget or budget <= 0):
        raise ValueError(f"budget must be a positive integer number of simulations, got {budget!r}")

    def run() -> Estimator:
        return fit(sim, method=method, budget=budget, options=options, generator=generator, progress=progress)

    return EstimatorChoice(sim, "retrained" if entry else "fitted", entry.name if entry else None, fit=run)
