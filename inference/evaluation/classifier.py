"""Calibration and OOD diagnostics of classifiers: ECE / MCE / ICE / GME with the thesis' bin edges, OCE, the
reliability diagram's data, entropy increase and ROC-AUC on out-of-distribution inputs.

Ardizzone's thesis (eqs. 5.19-5.27, appendix C.3) bins *all classes'* predicted probabilities p_jk (not only the
top one) with the edges

    0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.15, 0.25, ..., 0.85, 0.95, 0.96, 0.97, 0.98, 0.99, 1

(fine near 0 and 1, where most probabilities fall), counts p_jk as correct when k is the true class, and compares per
bin i the predicted probability P_i with the observed frequency Q_i = n_correct,i / n_i:

    ECE = sum_i n_i / n |P_i - Q_i|,   MCE = max_i |P_i - Q_i|,   ICE = sum_i (b_{i+1} - b_i) |P_i - Q_i|,
    GME = (ECE MCE ICE)^(1/3).

P_i: the thesis uses the bin centre; zoo uses the mean predicted probability in the bin by default
(``centre="mean"``, as Guo et al. 2017), because the centre form is biased for a perfectly calibrated classifier
(in a 0.1-wide bin whose probabilities are not centred, |centre - Q_i| is up to 0.05 with infinite data);
``centre="midpoint"`` gives the thesis' numbers. MCE and ICE count bins with at least ``min_count`` probabilities
(the thesis' reference code: 20), so that a bin of three values does not set the maximum.

OCE (thesis, ImageNet): the error rate among predictions with confidence >= 99.7 %, divided by 0.3 % — 1 for a
classifier whose 99.7 %-confident predictions are right 99.7 % of the time, above 1 when overconfident.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

THESIS_EDGES = np.unique(
    np.concatenate([np.arange(0, 0.05, 0.01), np.arange(0.05, 0.95, 0.1), np.arange(0.95, 1.0, 0.01), [1.0]]).round(4)
)
"""The bin edges of the thesis (app. C.3): 20 edges, 19 bins."""

OCE_CONFIDENCE = 0.997


class Calibration(NamedTuple):
    """Calibration metrics of a classifier on labelled data (all as fractions, not percent).

    Attributes:
        ece, mce, ice, gme: the thesis' metrics (module docstring).
        oce: error rate among predictions with confidence >= 99.7 % over 0.3 % (NaN when there are none).
        accuracy: fraction of argmax predictions that are right.
        edges: bin edges, (B + 1,); predicted, observed: P_i and Q_i per bin (NaN for empty bins); counts: n_i.
    """

    ece: float
    mce: float
    ice: float
    gme: float
    oce: float
    accuracy: float
    edges: np.ndarray
    predicted: np.ndarray
    observed: np.ndarray
    counts: np.ndarray


def calibration(
    probs: np.ndarray,
    labels: np.ndarray,
    *,
    edges: np.ndarray = THESIS_EDGES,
    centre: str = "mean",
    min_count: int = 20,
) -> Calibration:
    """The calibration of class probabilities ``probs`` (N, K) against integer ``labels`` (N,).

    Raises:
        ValueError: probabilities that are not a finite (N, K) array with rows summing to 1, labels out of range,
            an unknown ``centre``.
    """
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels).astype(int).reshape(-1)
    if p.ndim != 2 or p.shape[0] != len(y) or p.shape[0] < 1:
        raise ValueError(f"probs must have shape (N, K) with N = {len(y)} labels, got {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any() or np.abs(p.sum(1) - 1).max() > 1e-4:
        raise ValueError("probs must be finite, non-negative and sum to 1 per row (apply softmax to logits first)")
    if (y < 0).any() or (y >= p.shape[1]).any():
        raise ValueError(f"labels must be in [0, {p.shape[1] - 1}]")
    if centre not in ("mean", "midpoint"):
        raise ValueError(f"centre must be 'mean' or 'midpoint', got {centre!r}")
    flat = p.reshape(-1)
    correct = (np.arange(p.shape[1])[None, :] == y[:, None]).reshape(-1).astype(float)
    idx = np.clip(np.searchsorted(edges, flat, side="right") - 1, 0, len(edges) - 2)
    nb = len(edges) - 1
    counts = np.bincount(idx, minlength=nb).astype(float)
    hits = np.bincount(idx, weights=correct, minlength=nb)
    sums = np.bincount(idx, weights=flat, minlength=nb)
    with np.errstate(invalid="ignore", divide="ignore"):
        observed = hits / counts
        predicted = sums / counts if centre == "mean" else (edges[:-1] + edges[1:]) / 2
    predicted = np.where(counts > 0, predicted, np.nan)
    gap = np.abs(predicted - observed)
    filled = counts > 0
    ece = float(np.sum(counts[filled] / counts.sum() * gap[filled]))
    solid = counts >= min_count
    mce = float(gap[solid].max()) if solid.any() else float("nan")
    ice = float(np.sum(np.diff(edges)[solid] * gap[solid]))
    gme = float(np.cbrt(ece * mce * ice)) if solid.any() else float("nan")
    conf, pred = p.max(1), p.argmax(1)
    sure = conf >= OCE_CONFIDENCE
    oce = float(np.mean(pred[sure] != y[sure]) / (1 - OCE_CONFIDENCE)) if sure.any() else float("nan")
    accuracy = float(np.mean(pred == y))
    return Calibration(ece, mce, ice, gme, oce, accuracy, np.asarray(edges), predicted, observed, counts)


def consistency_ece(probs: np.ndarray, *, draws: int = 200, seed: int = 0, **kw) -> np.ndarray:
    """ECEs of labels drawn from ``probs`` themselves (consistency resampling, Broecker & Smith 2007): the sampling
    distribution of the ECE of a perfectly calibrated classifier with these probabilities, shape (draws,)."""
    p = np.asarray(probs, dtype=np.float64)
    rng = np.random.default_rng(seed)
    cum = p.cumsum(1)
    out = []
    for _ in range(int(draws)):
        u = rng.uniform(size=(len(p), 1))
        y = np.minimum((u > cum).sum(1), p.shape[1] - 1)
        out.append(calibration(p, y, **kw).ece)
    return np.asarray(out)


def entropy(probs: np.ndarray) -> np.ndarray:
    """Entropy (nats) of each row of class probabilities (N, K)."""
    from scipy.stats import entropy as shannon

    return shannon(np.asarray(probs, dtype=np.float64), axis=1)


def entropy_increase(probs_in: np.ndarray, probs_out: np.ndarray) -> float:
    """Delta H: mean predictive entropy on OOD inputs minus on in-distribution ones (thesis table 5.1), nats."""
    return float(entropy(probs_out).mean() - entropy(probs_in).mean())


class ClassifierReport(NamedTuple):
    """Calibration and OOD diagnostics of one classifier on one labelled set.

    Attributes:
        name: the classifier (name or path).
        calibration: :class:`Calibration` on the labelled in-distribution data.
        ood: per OOD set: ``{"delta_entropy": Delta H (nats), "auroc_entropy": ROC-AUC of the predictive entropy,
            "auroc_typicality": ROC-AUC of 1 - the two-sided typicality p-value of the entropy}``.
        n: labelled inputs.
    """

    name: str
    calibration: Calibration
    ood: dict[str, dict[str, float]]
    n: int

    def table(self) -> str:
        """The Markdown tables a person reads (metrics in percent, as the thesis reports them)."""
        c = self.calibration
        lines = [
            f"Classifier {self.name} on {self.n} labelled inputs (ECE, MCE, ICE, GME, error in %; thesis bin edges)",
            "",
            "| error | ECE | MCE | ICE | GME | OCE |",
            "|---|---|---|---|---|---|",
            f"| {100 * (1 - c.accuracy):.2f} | {100 * c.ece:.2f} | {100 * c.mce:.2f} | {100 * c.ice:.2f} | "
            f"{100 * c.gme:.2f} | {c.oce:.2f} |",
            "",
            "ECE over all bins; MCE, ICE over bins of >= 20 probabilities; OCE: error rate of >= 99.7 %-confident "
            "predictions / 0.3 %.",
        ]
        if self.ood:
            lines += ["", "| OOD set | Delta H (nats) | ROC-AUC entropy | ROC-AUC typicality |", "|---|---|---|---|"]
            for k, v in self.ood.items():
                lines.append(
                    f"| {k} | {v['delta_entropy']:.3f} | {v['auroc_entropy']:.3f} | {v['auroc_typicality']:.3f} |"
                )
        return "\n".join(lines)


def class_probs(subject, x, *, batch_size: int = 256) -> np.ndarray:
    """Class probabilities (N, K) of a classifier subject (output logits / probs / log_probs) on inputs x."""
    import torch

    if getattr(subject, "layer", None) is not None:
        raise ValueError("calibration needs the subject's class scores; load it without --layer")
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            h = subject(x[i : i + batch_size].to(subject.device)).float()
            if h.ndim != 2:
                raise ValueError(f"a classifier subject returns (B, classes); this one returns {tuple(h.shape)}")
            kind = getattr(subject, "output", "output")
            p = h if kind == "probs" else h.exp() if kind == "log_probs" else h.softmax(-1)
            out.append(p.cpu().double().numpy())
    return np.concatenate(out)


def evaluate_classifier(subject, x, labels, *, ood: dict | None = None, name: str = "") -> ClassifierReport:
    """Calibration of a classifier subject on labelled inputs and its OOD behaviour on unlabelled sets.

    The typicality column uses half of the in-distribution entropies as the reference and the other half as the
    in-distribution test inputs (:class:`inference.ood.pvalues.Typicality`, two-sided).
    """
    from inference.ood.pvalues import Typicality, roc_auc

    p_in = class_probs(subject, x)
    cal = calibration(p_in, np.asarray(labels))
    h_in = entropy(p_in)
    half = len(h_in) // 2
    rows = {}
    for k, xo in (ood or {}).items():
        p_out = class_probs(subject, xo)
        h_out = entropy(p_out)
        row = {"delta_entropy": entropy_increase(p_in, p_out), "auroc_entropy": roc_auc(h_in, h_out)}
        if half >= 2:
            test = Typicality(h_in[:half])
            row["auroc_typicality"] = roc_auc(-test.p_values(h_in[half:]), -test.p_values(h_out))
        else:
            row["auroc_typicality"] = float("nan")
        rows[k] = row
    return ClassifierReport(name, cal, rows, len(p_in))


__all__ = [
    "OCE_CONFIDENCE",
    "THESIS_EDGES",
    "Calibration",
    "ClassifierReport",
    "calibration",
    "class_probs",
    "consistency_ece",
    "entropy",
    "entropy_increase",
    "evaluate_classifier",
]
