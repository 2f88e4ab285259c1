"""Plots of posteriors, calibration, fibers and OOD scores: the only modules that import matplotlib.

Every function takes arrays (or result objects) and returns a :class:`matplotlib.figure.Figure`; nothing is shown
and no global pyplot state is touched (figures are built with ``Figure()``, so no display backend is needed).
:func:`save_figures` writes them.
"""

from inference.plots.calibration import calibration_curve, calibration_figures, report_figure, sbc_histogram
from inference.plots.classifier import class_fiber_grid, reliability_diagram
from inference.plots.fibers import fiber_grid, fidelity_consistency
from inference.plots.ood import atypical_grid, ood_figures, score_histogram
from inference.plots.posterior import arm_poses, corner, result_figures
from inference.plots.style import POSTERIOR_COLOR, PRIOR_COLOR, TRUTH_COLOR, save_figures

__all__ = [
    "POSTERIOR_COLOR",
    "PRIOR_COLOR",
    "TRUTH_COLOR",
    "arm_poses",
    "atypical_grid",
    "calibration_curve",
    "calibration_figures",
    "class_fiber_grid",
    "corner",
    "reliability_diagram",
    "report_figure",
    "fiber_grid",
    "fidelity_consistency",
    "ood_figures",
    "result_figures",
    "save_figures",
    "sbc_histogram",
    "score_histogram",
]
