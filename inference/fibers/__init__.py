"""Fiber sampling: which inputs can a model not tell apart?

Fiber methods are registered by name like posterior methods (:mod:`inference.fibers.registry`): ``"ndtm"`` guides a
pretrained diffusion / flow-matching prior (:mod:`inference.fibers.ndtm`), ``"conditional"`` trains a conditional
fiber model (:mod:`inference.fibers.conditional`). :func:`sample_fibers` is the pipeline ``zoo fiber`` and the
benchmark call; :mod:`inference.fibers.refine` refines samples (appendix A); :mod:`inference.fibers.metrics` scores
them (fiber loss, nearest neighbour, augmentation).
"""

from inference.fibers import conditional, ndtm  # noqa: F401  (registers the built-in fiber methods)
from inference.fibers.refine import RefineOptions
from inference.fibers.registry import (
    FiberDraws,
    FiberMethodSpec,
    UnknownFiberMethodError,
    fiber_method_spec,
    fiber_methods,
    make_fiber_options,
    register_fiber_method,
)
from inference.fibers.sample import reference_set, sample_fibers

__all__ = [
    "FiberDraws",
    "FiberMethodSpec",
    "RefineOptions",
    "UnknownFiberMethodError",
    "fiber_method_spec",
    "fiber_methods",
    "make_fiber_options",
    "reference_set",
    "register_fiber_method",
    "sample_fibers",
]
