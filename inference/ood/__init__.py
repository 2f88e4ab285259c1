"""Out-of-distribution scores of inputs under zoo's priors, calibrated into p-values.

Is this input from the prior's world? :func:`ood_scores` scores inputs with a registered score (:func:`scores`:
``lmd``, ``diffuse-denoise``, ``likelihood``, ``elbo``, ``iwae``) and turns each score into a two-sided typicality
p-value against the scores of in-distribution reference inputs. Rooms: :mod:`~inference.ood.masks` (checkerboards),
:mod:`~inference.ood.reconstruct` (inpainting and diffuse-denoise, LMD), :mod:`~inference.ood.likelihood` (exact,
ODE, ELBO and IWAE log-likelihoods), :mod:`~inference.ood.pvalues` (the typicality test, ROC-AUC),
:mod:`~inference.ood.scores` (the registry) and :mod:`~inference.ood.run` (reference sets, the result). See
docs/ood.md.
"""

from inference.ood.likelihood import diffusion_log_weights, elbo, flow_log_prob, iwae, ode_log_prob
from inference.ood.masks import checkerboard, default_block
from inference.ood.pvalues import Typicality, roc_auc
from inference.ood.reconstruct import DiffusionInpainter, diffuse_denoise, lmd
from inference.ood.run import ood_scores, quick_check, reference_inputs
from inference.ood.scores import SCORES, Scored, ScoreSpec, UnknownScoreError, register_score, score, score_spec, scores

__all__ = [
    "SCORES",
    "DiffusionInpainter",
    "ScoreSpec",
    "Scored",
    "Typicality",
    "UnknownScoreError",
    "checkerboard",
    "default_block",
    "diffuse_denoise",
    "diffusion_log_weights",
    "elbo",
    "flow_log_prob",
    "iwae",
    "lmd",
    "ode_log_prob",
    "ood_scores",
    "quick_check",
    "reference_inputs",
    "register_score",
    "roc_auc",
    "score",
    "score_spec",
    "scores",
]
