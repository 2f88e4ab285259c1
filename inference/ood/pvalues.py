"""Calibration of scores into p-values: a typicality test against in-distribution reference scores.

Following the thesis' chapter 5 (OOD detection as a hypothesis test with two thresholds on the training
distribution of the score), a score s is compared with the scores s_1..s_n of n in-distribution reference inputs.
The one-sided conformal p-values

    p_high = (1 + #{s_i >= s}) / (n + 1),        p_low = (1 + #{s_i <= s}) / (n + 1)

are valid (P(p <= a) <= a for an in-distribution input exchangeable with the reference), and the two-sided
typicality p-value is p = min(1, 2 min(p_high, p_low)): an input is flagged when its score is unusually high *or*
unusually low. The two-sided test is the default for every score: a likelihood can be atypically high (a blank image
under an image prior), and a reconstruction distance atypically low (an input simpler than the data, which the prior
inpaints too well). Rejecting at p < alpha has a false-positive rate of at most alpha on in-distribution inputs.
"""

from __future__ import annotations

import numpy as np

ALTERNATIVES = ("two-sided", "greater", "less")


class Typicality:
    """p-values of scores against reference scores of in-distribution inputs.

    Arguments:
        reference: the reference scores, shape (n,), finite.
        alternative: ``"two-sided"`` (default), ``"greater"`` (only high scores are atypical) or ``"less"``.

    Example:
        >>> import numpy as np
        >>> test = Typicality(np.arange(99.0))
        >>> test.p_values(np.array([49.0, 1000.0]))
        array([1.  , 0.02])
    """

    def __init__(self, reference: np.ndarray, alternative: str = "two-sided") -> None:
        ref = np.asarray(reference, dtype=np.float64).reshape(-1)
        if ref.size < 1 or not np.isfinite(ref).all():
            raise ValueError(f"the reference scores must be a non-empty set of finite numbers, got {ref.size} values")
        if alternative not in ALTERNATIVES:
            raise ValueError(f"unknown alternative {alternative!r}; use one of {', '.join(ALTERNATIVES)}")
        self.reference, self.alternative = np.sort(ref), alternative

    @property
    def n(self) -> int:
        return int(self.reference.size)

    def p_values(self, scores: np.ndarray) -> np.ndarray:
        """The p-value of each score (shape of ``scores``); a non-finite score gets p = 1/(n + 1), the smallest."""
        s = np.asarray(scores, dtype=np.float64)
        ref, n = self.reference, self.n
        high = (1 + n - np.searchsorted(ref, s, side="left")) / (n + 1)
        low = (1 + np.searchsorted(ref, s, side="right")) / (n + 1)
        p = {"greater": high, "less": low}.get(self.alternative)
        if p is None:
            p = np.minimum(1.0, 2 * np.minimum(high, low))
        return np.where(np.isfinite(s), p, 1 / (n + 1))


def roc_auc(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
    """ROC-AUC of separating out- from in-distribution inputs by ``score`` (higher = more out-of-distribution):
    the probability that an OOD input scores above an in-distribution one, ties counting half (scikit-learn's
    ``roc_auc_score``). 0.5 is chance; below 0.5 the score ranks OOD inputs as *more* typical. NaN when a score is
    not finite."""
    from sklearn.metrics import roc_auc_score

    a, b = np.asarray(in_scores, float).ravel(), np.asarray(out_scores, float).ravel()
    scores = np.concatenate([a, b])
    if not np.isfinite(scores).all():
        return float("nan")
    return float(roc_auc_score(np.r_[np.zeros(len(a)), np.ones(len(b))], scores))


__all__ = ["ALTERNATIVES", "Typicality", "roc_auc"]
