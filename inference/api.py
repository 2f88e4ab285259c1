"""The method interface every posterior method plugs into: a registry, ``fit`` and ``load``.

A *method* is registered once with :func:`register_method` and is then reachable by name from Python
(``inference.fit(sim, method="abc", budget=...)``) and from the command line (``zoo infer --method abc``,
``zoo diagnose --method abc``). The shapes (lampe-style, see ARCHITECTURE.md)::

    fit(simulator, *, method, budget, options, generator, progress) -> Estimator
    Estimator.posterior(x_o) -> Posterior            # x_o always explicit, shape (*batch, *obs_shape)
    Posterior.sample(n, *, generator) -> Tensor      # (n, *batch, D), sample dimension first
    Posterior.log_prob(theta) -> Tensor              # (*sample, *batch, D) -> (*sample, *batch), if has_log_prob
    Estimator.save(dir) / inference.load(dir)        # versioned directory: estimator.json + weights.safetensors

Optional capabilities of a ``Posterior``, discovered with ``hasattr`` (as for simulators):

- ``sample_with_stats(n, *, generator) -> (theta, stats)``: the draws plus per-draw statistics, a dict of tensors
  shaped ``(n, *batch)`` (e.g. ABC distances, NUTS step sizes) that go to the ``sample_stats`` group of a result
  file. Scalar diagnostics per observation (e.g. R-hat) may be shaped ``(*batch)`` or ``(*batch, D)``.
- ``n_chains: int``: the ``n`` draws are ``n_chains`` chains of ``n // n_chains`` draws each, chain-major.

A method's estimator directory is written and read with :func:`save_estimator` / :func:`read_estimator` so that all
methods share one versioned layout::

    DIR/estimator.json       {"format": "zoo.estimator", "version": 1, "method": ..., "simulator": {name, options},
                              "options": {...}, "budget": ..., "config": {...method specific...}, "zoo_version": ...}
    DIR/weights.safetensors  named tensors (optional; never pickled)
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from safetensors.torch import load_file, save_file

import simulators
import zoo
from simulators import Simulator

FORMAT = "zoo.estimator"
FORMAT_VERSION = 1
CONFIG_FILE = "estimator.json"
WEIGHTS_FILE = "weights.safetensors"


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
LoadFn = Callable[["EstimatorFiles"], Estimator]
"""``load_fn(files: EstimatorFiles) -> Estimator``."""


@dataclass(frozen=True)
class MethodSpec:
    """A registry entry: how to fit, how to load, and the options dataclass of one method."""

    name: str
    fit_fn: FitFn
    load_fn: LoadFn
    options_cls: type


_METHODS: dict[str, MethodSpec] = {}


class UnknownMethodError(ValueError):
    """Raised for an unknown method name or option; the message lists the valid choices."""


def register_method(name: str, fit_fn: FitFn, load_fn: LoadFn, options_cls: type) -> None:
    """Register a posterior method under ``name``.

    Arguments:
        name: the name used by ``fit(..., method=name)`` and ``zoo infer --method name``.
        fit_fn: ``fit_fn(simulator, *, budget, options, generator, progress) -> Estimator``; ``options`` is an
            instance of ``options_cls``.
        load_fn: ``load_fn(files) -> Estimator`` rebuilding the estimator from :class:`EstimatorFiles`.
        options_cls: a frozen dataclass whose defaults work.

    Raises:
        ValueError: if ``name`` is taken or ``options_cls`` is not a dataclass.
    """
    if name in _METHODS:
        raise ValueError(f"method {name!r} is already registered")
    if not dataclasses.is_dataclass(options_cls):
        raise ValueError(f"options_cls for method {name!r} must be a dataclass, got {options_cls!r}")
    _METHODS[name] = MethodSpec(name, fit_fn, load_fn, options_cls)


def methods() -> list[str]:
    """The names of all registered posterior methods, sorted."""
    return sorted(_METHODS)


def method_spec(name: str) -> MethodSpec:
    """The registry entry of ``name``.

    Raises:
        UnknownMethodError: for an unknown name, listing the registered ones.
    """
    if name not in _METHODS:
        raise UnknownMethodError(f"unknown method {name!r}; valid methods: {', '.join(methods()) or 'none'}")
    return _METHODS[name]


def make_options(method: str, options: Any = None) -> Any:
    """Turn ``None``, a dict or an options instance into the method's options dataclass.

    Lists in a dict become tuples (JSON has no tuples). ``None`` for a field typed plain ``str`` becomes ``"none"``
    (the command line reads ``--option summary=none`` as ``None``). Unknown keys raise a one-line error listing valid
    ones.
    """
    cls = method_spec(method).options_cls
    if options is None:
        return cls()
    if isinstance(options, cls):
        return options
    if not isinstance(options, Mapping):
        raise ValueError(f"options for method {method!r} must be a {cls.__name__} or a dict, got {options!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - set(fields))
    if unknown:
        valid = ", ".join(f"{f.name} (default {_default(f)!r})" for f in fields.values())
        raise UnknownMethodError(f"unknown option {unknown[0]!r} for method {method!r}; valid options: {valid}")
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    kw = {k: "none" if v is None and fields[k].type in ("str", str) else v for k, v in kw.items()}
    return cls(**kw)


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


@dataclass(frozen=True)
class EstimatorFiles:
    """The parsed contents of an estimator directory, handed to a method's ``load_fn``.

    Attributes:
        directory: the directory.
        method: the method name.
        simulator: the simulator rebuilt from its saved name and options.
        options: the method options, rebuilt as the method's dataclass.
        budget: the budget it was fitted with.
        config: the method-specific JSON config (network sizes, standardization statistics, ...).
        tensors: the named tensors of ``weights.safetensors`` (empty if the method saved none).
    """

    directory: Path
    method: str
    simulator: Simulator
    options: Any
    budget: int | None
    config: dict[str, Any]
    tensors: dict[str, torch.Tensor]


def save_estimator(
    directory: str | os.PathLike,
    *,
    method: str,
    simulator: Simulator,
    options: Any,
    budget: int | None,
    config: Mapping[str, Any] | None = None,
    tensors: Mapping[str, torch.Tensor] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write an estimator directory atomically (a temporary sibling directory, then a rename).

    Arguments:
        directory: target directory; must not exist unless ``overwrite``.
        method: the registered method name.
        simulator: the simulator (its ``name`` and ``options`` are recorded).
        options: the method's options dataclass (recorded with ``dataclasses.asdict``).
        budget: the budget it was fitted with.
        config: method-specific JSON-serializable settings needed to rebuild the estimator.
        tensors: named tensors (weights, statistics), saved as safetensors on CPU.
        overwrite: replace an existing directory.

    Returns:
        The directory path.

    Raises:
        FileExistsError: if ``directory`` exists, is not empty and ``overwrite`` is false.
    """
    target = Path(directory)
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"{target} exists and is not a directory")
    if target.exists() and any(target.iterdir()) and not overwrite:
        raise FileExistsError(f"{target} already exists; pass overwrite=True (--overwrite) to replace it")
    header = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "method": method,
        "simulator": {"name": simulator.name, "options": dict(getattr(simulator, "options", {}) or {})},
        "options": dataclasses.asdict(options) if dataclasses.is_dataclass(options) else dict(options or {}),
        "budget": budget,
        "config": dict(config or {}),
        "zoo_version": zoo.__version__,
        "torch_version": str(torch.__version__),
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        (tmp / CONFIG_FILE).write_text(json.dumps(header, indent=2, sort_keys=True))
        if tensors:
            save_file({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, str(tmp / WEIGHTS_FILE))
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def read_estimator(directory: str | os.PathLike) -> EstimatorFiles:
    """Read and validate an estimator directory written by :func:`save_estimator`.

    Raises:
        FileNotFoundError: if the directory or its ``estimator.json`` is missing.
        ValueError: for a corrupt or foreign config, an unsupported version, or an unknown method.
    """
    d = Path(directory)
    cfg_path = d / CONFIG_FILE
    if not d.is_dir():
        raise FileNotFoundError(f"estimator directory {d} does not exist")
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path} is missing; expected an estimator directory written by Estimator.save")
    try:
        header = json.loads(cfg_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{cfg_path} is not valid JSON ({e}); the estimator directory is corrupt") from e
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"{cfg_path} is not a zoo estimator config (expected format {FORMAT!r})")
    if header.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"{cfg_path} has estimator format version {header.get('version')!r}; this zoo reads version "
            f"{FORMAT_VERSION}"
        )
    method = header["method"]
    spec = method_spec(method)
    sim_info = header["simulator"]
    sim = simulators.get(sim_info["name"], **sim_info.get("options", {}))
    opts = make_options(method, header.get("options", {}))
    tensors: dict[str, torch.Tensor] = {}
    weights = d / WEIGHTS_FILE
    if weights.exists():
        try:
            tensors = load_file(str(weights))
        except Exception as e:  # safetensors raises its own error types for truncated / foreign files
            raise ValueError(f"{weights} could not be read ({type(e).__name__}); the file is corrupt") from e
    return EstimatorFiles(
        directory=d,
        method=spec.name,
        simulator=sim,
        options=opts,
        budget=header.get("budget"),
        config=dict(header.get("config", {})),
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


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None
