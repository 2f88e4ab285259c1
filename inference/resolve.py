"""Which estimator a pipeline runs with: saved, shipped, a shipped recipe retrained, or fitted now.

:func:`estimator_for` is the one resolution ``zoo infer``, ``zoo diagnose`` and ``zoo train`` share (and Python users
of the same pipelines). It checks everything at once and returns an :class:`EstimatorChoice` whose fit, if one is
needed, runs when its ``estimator`` is first read, so that a command can check its other inputs first.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch

import simulators
from inference.methods import (
    Estimator,
    check_table,
    fit,
    load,
    load_shipped,
    make_options,
    method_spec,
    read_estimator,
)
from simulators import Simulator, specs


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
    trust_code: bool = False,
    default_method: str = "abc",
    simulations: tuple[torch.Tensor, torch.Tensor] | None = None,
    param_names: list[str] | tuple[str, ...] | None = None,
    generator: torch.Generator | None = None,
    progress: bool = True,
) -> EstimatorChoice:
    """The one resolution of which estimator to use: saved, shipped, shipped recipe retrained, or fitted.

    In order: ``estimator`` (a directory or a shipped name) is loaded; otherwise, with no ``method``, ``budget`` or
    ``options``, the simulator's shipped estimator is the default (loaded, or trained afresh with its recorded
    method, budget and options when ``retrain``); otherwise ``method`` (default ``default_method``) is fitted. A fit
    runs when the returned choice's ``estimator`` is first read; everything else is checked here.

    Arguments:
        simulator: a simulator, a registered name or ``module:factory`` / ``file.py:factory``. With ``estimator``:
            a name is checked against the saved one; a code spec or a simulator object is used instead of rebuilding.
        method: the posterior method.
        estimator: a saved estimator directory or a shipped estimator's name.
        budget: the simulation budget of a fit.
        options: the method's options (a dict or the dataclass).
        simulator_options: options of a simulator given by name.
        retrain: train the shipped default afresh instead of loading it.
        trust_code: rebuild a saved estimator's simulator that is a user's module or file (:func:`read_estimator`).
        default_method: the method fitted when none is given and there is no shipped default.
        simulations: a table ``(theta, x)`` to fit on (no shipped default then); the simulator may be ``None``.
        param_names: the parameter names of a table without a simulator.
        generator: randomness of a fit.
        progress: show progress bars.

    Raises:
        ValueError: contradictory arguments, an unknown simulator, method or option (one line), or whatever
            loading raises.
    """
    from zoo import estimators as shipped

    if estimator is not None:
        given_fit = (("--method", method is not None), ("--budget", budget is not None), ("--option", bool(options)))
        fitting = [
            flag for flag, v in (*given_fit, ("--retrain", retrain), ("--simulations", simulations is not None)) if v
        ]
        if fitting:
            raise ValueError(
                f"{fitting[0]} configures training, and --estimator {os.fspath(estimator)} is already trained: "
                f"drop {fitting[0]}, or drop --estimator to train anew"
            )
        given = simulator if not isinstance(simulator, str) else None
        if isinstance(simulator, str) and specs.is_code_spec(simulator):  # the user names the code: use it
            given = simulators.get(simulator, **dict(simulator_options or {}))
        est = load(estimator, trust_code=trust_code, simulator=given)
        name = simulator if isinstance(simulator, str) and given is None else getattr(given, "name", None)
        if name is not None and name != est.simulator.name:
            raise ValueError(f"--simulator {name} does not match the estimator's simulator {est.simulator.name}")
        return EstimatorChoice(est.simulator, "loaded", os.fspath(estimator), estimator=est)
    if simulator is None and simulations is None:
        raise ValueError("give a simulator (--simulator NAME) or a saved estimator (--estimator DIR)")
    sim = simulators.get(simulator, **dict(simulator_options or {})) if isinstance(simulator, str) else simulator
    if simulations is not None:
        sim, simulations = check_table(sim, simulations, param_names)
    entry = None
    if method is None and budget is None and not options and simulations is None:
        entry = shipped.default_for(sim.name, getattr(sim, "options", {}))
    if entry is not None and not retrain:
        # from the package even if the working directory has a folder of that name (the user did not name it)
        return EstimatorChoice(sim, "shipped", entry.name, estimator=load_shipped(entry.name))
    if entry is not None:  # the shipped recipe: its method, budget and recorded options
        method, budget = entry.method, entry.budget
        options = read_estimator(entry.directory).options
    elif retrain:
        raise ValueError(
            f"--retrain applies to a shipped estimator, and there is none for {sim.name} with these options "
            "when --method/--budget/--option are given; drop --retrain"
        )
    method = default_method if method is None else method
    method_spec(method)
    options = make_options(method, options)
    if budget is not None and (isinstance(budget, bool) or int(budget) != budget or budget <= 0):
        raise ValueError(f"budget must be a positive integer number of simulations, got {budget!r}")

    def run() -> Estimator:
        return fit(
            sim,
            method=method,
            budget=budget,
            options=options,
            generator=generator,
            progress=progress,
            simulations=simulations,
        )

    return EstimatorChoice(sim, "retrained" if entry else "fitted", entry.name if entry else None, fit=run)
