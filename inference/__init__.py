"""Posterior methods, pipelines, result files, diagnostics and plots.

``inference.fit(simulator, method=..., budget=...)`` fits any registered method; ``inference.load(dir)`` rebuilds a
saved estimator; ``inference.methods()`` lists the registered names; ``inference.estimator_for(...)`` is the one
resolution of saved / shipped / retrained / fitted estimators and ``inference.infer(estimator, x_o)`` the posterior
run that ``zoo infer`` makes. See :mod:`inference.methods` for the interface.

Wings: :mod:`inference.posterior` (posterior methods and their training data), :mod:`inference.networks` (shared
flow blocks), :mod:`inference.fibers` (fiber methods: NDTM guidance, the conditional fiber model, refinement,
metrics), :mod:`inference.evaluation` (calibration and diagnostics, color-MNIST scoring), :mod:`inference.results`
(result objects; its ``netcdf`` module is the only one touching xarray / arviz) and :mod:`inference.plots` (the only
matplotlib rooms).

Built-in methods live in their own modules and register themselves on import (``register_method`` at the bottom of
the module); importing :mod:`inference` imports them all.
"""

from inference.estimator_dir import EstimatorFiles, save_estimator
from inference.infer import infer
from inference.methods import (
    Estimator,
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
)
from inference.posterior import abc, cinn, fmpe, inn, mcmc  # noqa: F401  (registers the built-in methods)
from inference.resolve import EstimatorChoice, estimator_for

__all__ = [
    "Estimator",
    "EstimatorChoice",
    "EstimatorFiles",
    "MethodSpec",
    "Posterior",
    "UnknownMethodError",
    "estimator_for",
    "fit",
    "infer",
    "load",
    "make_options",
    "method_spec",
    "methods",
    "read_estimator",
    "register_method",
    "save_estimator",
]
