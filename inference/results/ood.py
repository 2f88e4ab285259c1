"""OOD scores and their file: :class:`OODScores` and :func:`read_ood` (``zoo_format = "zoo.ood"``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from inference.results import netcdf
from inference.results.netcdf import Group, ResultFile, attr_json
from inference.results.posterior import as_numpy, now, result_attrs, versions, x_dim_names

ALPHA = 0.01
"""The significance level of the one-line summary and the plots' thresholds."""


@dataclass
class OODScores(ResultFile):
    """Scores of inputs under a prior with typicality p-values against in-distribution reference scores.

    Attributes:
        inputs: the scored inputs, shape (input, *shape).
        score: each input's score, shape (input,).
        p_value: two-sided typicality p-value (or the recorded ``alternative``), shape (input,).
        reference_score: the scores of the reference inputs, shape (reference,).
        method: the score's name (``lmd``, ``diffuse-denoise``, ``likelihood``, ``elbo``, ``iwae``).
        kind: what the score is (a distance, an exact log-density, a bound, an estimate).
        higher_is_ood: whether large scores mean "unlike the data".
        prior: the prior (name or path).
        reference: where the reference inputs came from.
        method_options: the score's options.
        alternative: the p-value's alternative (``two-sided``, ``greater``, ``less``).
        reconstruction: the reconstructions of reconstruction scores, shape (input, *shape), or ``None``.
        seed, wall_time_s, created, versions: provenance.

    Groups of the file: ``observed_data`` (x: input, x_dim_*), ``ood`` (score, p_value and the reconstructions),
    ``constant_data`` (reference_score: reference).
    """

    inputs: np.ndarray
    score: np.ndarray
    p_value: np.ndarray
    reference_score: np.ndarray
    method: str
    kind: str
    higher_is_ood: bool
    prior: str
    reference: str
    method_options: dict[str, Any] = field(default_factory=dict)
    alternative: str = "two-sided"
    reconstruction: np.ndarray | None = None
    seed: int | None = None
    wall_time_s: float = float("nan")
    created: str = ""
    versions: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.inputs, self.score = as_numpy(self.inputs), as_numpy(self.score).reshape(-1)
        self.p_value, self.reference_score = as_numpy(self.p_value).reshape(-1), as_numpy(self.reference_score)
        self.reference_score = self.reference_score.reshape(-1)
        n = len(self.inputs)
        if self.score.shape != (n,) or self.p_value.shape != (n,):
            raise ValueError(f"score and p_value must have shape ({n},), got {self.score.shape}, {self.p_value.shape}")
        if self.reconstruction is not None:
            self.reconstruction = as_numpy(self.reconstruction)
            if self.reconstruction.shape != self.inputs.shape:
                raise ValueError(f"reconstructions of shape {self.reconstruction.shape} do not match the inputs")
        self.created = self.created or now()
        self.versions = self.versions or versions()

    def flagged(self, alpha: float = ALPHA) -> np.ndarray:
        """Indices of the inputs with p < alpha, most atypical first."""
        order = self.order()
        return order[self.p_value[order] < alpha]

    def order(self) -> np.ndarray:
        """All inputs from the most to the least atypical: by p-value, then by how far out the score lies."""
        med = float(np.median(self.reference_score)) if self.reference_score.size else 0.0
        spread = np.abs(self.score - med)
        return np.lexsort((-spread, self.p_value))

    def summary(self, alpha: float = ALPHA) -> str:
        """The one-line summary a person reads."""
        n, k, m = len(self.score), int((self.p_value < alpha).sum()), self.reference_score.size
        line = (
            f"{k} of {n} inputs atypical at p < {alpha:g} ({self.method}: {self.kind}; about {alpha * n:.2g} expected "
            f"by chance if all were in-distribution); median score {np.median(self.score):.4g}, reference median "
            f"{np.median(self.reference_score):.4g} ({m} reference inputs from {self.reference})"
        )
        floor = (2 if self.alternative == "two-sided" else 1) / (m + 1)
        if floor >= alpha:
            need = int(np.ceil((2 if self.alternative == "two-sided" else 1) / alpha))
            line += f"; with {m} reference inputs no p-value is below {floor:.3g}: use --reference-size {need} or more"
        return line

    def layout(self) -> tuple[dict[str, Any], dict[str, Group]]:
        x_dims = x_dim_names(self.inputs.shape[1:])
        idx = {"input": np.arange(len(self.inputs))}
        ood: dict[str, Any] = {"score": (("input",), self.score), "p_value": (("input",), self.p_value)}
        if self.reconstruction is not None:
            ood["reconstruction"] = (("input", *x_dims), self.reconstruction)
        groups = {
            "observed_data": Group({"x": (("input", *x_dims), self.inputs)}, idx),
            "ood": Group(ood, idx),
            "constant_data": Group(
                {"reference_score": (("reference",), self.reference_score)},
                {"reference": np.arange(self.reference_score.size)},
            ),
        }
        fields = {
            "method": self.method,
            "kind": self.kind,
            "higher_is_ood": int(bool(self.higher_is_ood)),
            "prior": self.prior,
            "reference": self.reference,
            "alternative": self.alternative,
        }
        stamp = {"seed": self.seed, "wall_time_s": self.wall_time_s, "created": self.created, "versions": self.versions}
        return result_attrs(netcdf.OOD, fields, groups, options=self.method_options, **stamp), groups

    @classmethod
    def from_layout(cls, attrs: dict[str, Any], groups: dict[str, Group]) -> OODScores:
        ood = {k: v for k, (_, v) in groups["ood"].variables.items()}
        seed = int(attrs.get("seed", -1))
        return cls(
            inputs=groups["observed_data"].variables["x"][1],
            score=ood["score"],
            p_value=ood["p_value"],
            reference_score=groups["constant_data"].variables["reference_score"][1],
            method=str(attrs["method"]),
            kind=str(attrs["kind"]),
            higher_is_ood=bool(int(attrs["higher_is_ood"])),
            prior=str(attrs["prior"]),
            reference=str(attrs["reference"]),
            method_options=attr_json(attrs.get("method_options", "{}")),
            alternative=str(attrs.get("alternative", "two-sided")),
            reconstruction=ood.get("reconstruction"),
            seed=None if seed < 0 else seed,
            wall_time_s=float(attrs.get("wall_time_s", float("nan"))),
            created=str(attrs.get("created_at", "")),
            versions={"zoo": str(attrs.get("zoo_version", "")), "torch": str(attrs.get("torch_version", ""))},
        )


def read_ood(path: str | os.PathLike) -> OODScores:
    """Read a file written by :meth:`OODScores.save` (``ValueError`` in one line for other or damaged files)."""
    attrs, groups = netcdf.read(path, (netcdf.OOD,), kind="OOD score")
    try:
        return OODScores.from_layout(attrs, groups)
    except (KeyError, ValueError, TypeError) as e:
        raise ValueError(f"{path} is a damaged zoo OOD score file ({type(e).__name__}: {e})") from None


__all__ = ["ALPHA", "OODScores", "read_ood"]
