"""Posterior methods, result files, diagnostics and plots.

``inference.fit(simulator, method=..., budget=...)`` fits any registered method; ``inference.load(dir)`` rebuilds a
saved estimator; ``inference.methods()`` lists the registered names. See :mod:`inference.api` for the interface.

The package has three wings: :mod:`inference.posterior` (the posterior methods and their building blocks),
:mod:`inference.fibers` (NDTM guidance, the conditional fiber model and fiber metrics) and
:mod:`inference.evaluation` (calibration and diagnostics). Result files (:mod:`inference.results`) and plots
(:mod:`inference.plots`) stay at the top: they are the only modules touching arviz/xarray and matplotlib.

Built-in methods live in their own modules and register themselves on import (``register_method`` at the bottom of
the module); importing :mod:`inference` imports them all.
"""

from inference.api import (
    Estimator,
    EstimatorFiles,
    MethodSpec,
    Posterior,
    UnknownMethodError,
    fit,
    load,
    make_options,
    method_spec,
    methods,
    read_estimator,
    register_method,
    save_estimator,
)
from inference.posterior import abc, cinn, inn, mcmc  # noqa: F401  (registers the built-in methods)

__all__ = [
    "Estimator",
    "EstimatorFiles",
    "MethodSpec",
    "Posterior",
    "UnknownMethodError",
    "fit",
    "load",
    "make_options",
    "method_spec",
    "methods",
    "read_estimator",
    "register_method",
    "save_estimator",
]
