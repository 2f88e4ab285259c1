"""Posterior methods, result files, diagnostics and plots.

``inference.fit(simulator, method=..., budget=...)`` fits any registered method; ``inference.load(dir)`` rebuilds a
saved estimator; ``inference.methods()`` lists the registered names. See :mod:`inference.api` for the interface.

Built-in methods live in their own modules and register themselves on import (``register_method`` at the bottom of
the module). The modules listed in ``_BUILTIN_METHOD_MODULES`` are imported here when present in the source tree, so
a new method only needs its module name added to that tuple.
"""

import importlib
import importlib.util

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

_BUILTIN_METHOD_MODULES = ("inference.abc", "inference.mcmc", "inference.inn", "inference.cinn")

for _name in _BUILTIN_METHOD_MODULES:
    if importlib.util.find_spec(_name) is not None:
        importlib.import_module(_name)

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
