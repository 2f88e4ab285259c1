"""Shared network blocks: affine couplings, conditional flows, spline couplings, summary networks, initialization.

Used by the trained posterior methods (:mod:`inference.posterior.inn`, :mod:`inference.posterior.cinn`) and the
conditional fiber model (:mod:`inference.fibers.conditional`); none of them knows about simulators or training.
"""
