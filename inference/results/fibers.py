"""Fiber samples and their file: :class:`FiberSamples` and :func:`read_fibers` (``zoo_format = "zoo.fibers"``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from inference.results import netcdf
from inference.results.netcdf import Group, ResultFile, attr_json
from inference.results.posterior import as_numpy, now, result_attrs, versions, x_dim_names


@dataclass
class FiberSamples(ResultFile):
    """Fiber samples x~ with phi(x~) ~= phi(x) for one or more targets x, with their losses and cost traces.

    Attributes:
        samples: fiber samples in data space, shape (chain, draw, target, *shape).
        target: the targets x, shape (target, *shape).
        fiber_loss: ||phi(x) - phi(x~)||^2 per sample, shape (chain, draw, target).
        method: ``"ndtm"`` or ``"conditional"``.
        subject: what the subject was (name or path, with layer / output).
        prior: the prior (name or path) or fiber model.
        method_options: the method's options (a plain dict).
        seed: the seed of the run's generator (``None`` if not seeded).
        wall_time_s: seconds sampling took.
        traces: per-step cost terms (e.g. ``terminal``, ``control``, ``score``), each (chain, draw, target, step).
        gamma: gamma_t per step, shape (step,) (NDTM).
        baselines: per-target reference losses, e.g. ``nearest_neighbour`` and ``augmented`` (target,).
        neighbour: the nearest-neighbour images, shape (target, *shape).
        augmented: one augmented copy of each target, shape (target, *shape).
        created: ISO time stamp (UTC).
        versions: library versions (zoo, torch).

    Groups of the file: ``posterior`` (x: chain, draw, target, x_dim_*), ``observed_data`` (x: target, x_dim_*),
    ``sample_stats`` (fiber_loss and the traces), ``constant_data`` (baselines, neighbour images, gamma).
    """

    samples: np.ndarray
    target: np.ndarray
    fiber_loss: np.ndarray
    method: str
    subject: str
    prior: str
    method_options: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    wall_time_s: float = float("nan")
    traces: dict[str, np.ndarray] = field(default_factory=dict)
    gamma: np.ndarray | None = None
    baselines: dict[str, np.ndarray] = field(default_factory=dict)
    neighbour: np.ndarray | None = None
    augmented: np.ndarray | None = None
    created: str = ""
    versions: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.samples, self.target, self.fiber_loss = (
            as_numpy(self.samples),
            as_numpy(self.target),
            as_numpy(self.fiber_loss),
        )
        if self.samples.ndim < 4 or self.samples.shape[2] != self.target.shape[0]:
            raise ValueError(
                f"samples must have shape (chain, draw, target, *shape) with target = {self.target.shape[0]}, "
                f"got {self.samples.shape}"
            )
        if self.samples.shape[3:] != self.target.shape[1:]:
            raise ValueError(f"samples of shape {self.samples.shape[3:]} do not match targets {self.target.shape[1:]}")
        if self.fiber_loss.shape != self.samples.shape[:3]:
            raise ValueError(f"fiber_loss must have shape {self.samples.shape[:3]}, got {self.fiber_loss.shape}")
        self.traces = {k: as_numpy(v) for k, v in self.traces.items()}
        self.baselines = {k: as_numpy(v).reshape(self.target.shape[0]) for k, v in self.baselines.items()}
        self.gamma = None if self.gamma is None else as_numpy(self.gamma)
        self.neighbour = None if self.neighbour is None else as_numpy(self.neighbour)
        self.augmented = None if self.augmented is None else as_numpy(self.augmented)
        self.created = self.created or now()
        self.versions = self.versions or versions()

    @property
    def n_targets(self) -> int:
        return self.target.shape[0]

    def ordered(self, target: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """The samples of one target sorted by fiber loss (chains merged): images (n, *shape) and losses (n,)."""
        x = self.samples[:, :, target].reshape(-1, *self.target.shape[1:])
        loss = self.fiber_loss[:, :, target].reshape(-1)
        order = np.argsort(loss, kind="stable")
        return x[order], loss[order]

    def describe(self) -> list[str]:
        """Lines a person reads: the refinement (if any) and the mean fiber loss against the baselines."""
        lines = []
        mean, median = float(self.fiber_loss.mean()), float(np.median(self.fiber_loss))
        before = self.method_options.get("fiber_loss_before_refine")
        if before is not None:
            r = self.method_options.get("refine", {})
            how = f"{r.get('steps')} steps, {r.get('latent_dim')}-d PCA latent"
            lines.append(f"refinement ({how}): mean {before:.4g} -> {mean:.4g}")
        parts = [f"fiber loss: mean {mean:.4g}, median {median:.4g}"]
        if "nearest_neighbour" in self.baselines:
            nn = float(self.baselines["nearest_neighbour"].mean())
            parts.append(f"nearest neighbour {nn:.4g} ({nn / mean if mean > 0 else float('inf'):.1f}x the mean)")
        if "augmented" in self.baselines:
            parts.append(f"augmented {float(self.baselines['augmented'].mean()):.4g}")
        lines.append("; ".join(parts))
        return lines

    def layout(self) -> tuple[dict[str, Any], dict[str, Group]]:
        """Root attributes and groups of the fiber file (see the class docstring)."""
        n_chain, n_draw, n_target = self.samples.shape[:3]
        x_dims = x_dim_names(self.target.shape[1:])
        c = {"chain": np.arange(n_chain), "draw": np.arange(n_draw), "target": np.arange(n_target)}
        axes = ("chain", "draw", "target")
        groups = {
            "posterior": Group({"x": ((*axes, *x_dims), self.samples)}, c),
            "observed_data": Group({"x": (("target", *x_dims), self.target)}, {"target": c["target"]}),
        }
        stats: dict[str, Any] = {"fiber_loss": (axes, self.fiber_loss)}
        stats |= {k: ((*axes, "step"), v) for k, v in self.traces.items()}
        groups["sample_stats"] = Group(stats, c)
        const: dict[str, Any] = {f"{k}_loss": (("target",), v) for k, v in self.baselines.items()}
        if self.neighbour is not None:
            const["neighbour"] = (("target", *x_dims), self.neighbour)
        if self.augmented is not None:
            const["augmented"] = (("target", *x_dims), self.augmented)
        if self.gamma is not None:
            const["gamma"] = (("step",), self.gamma)
        if const:
            groups["constant_data"] = Group(const, {"target": c["target"]})
        fields = {"method": self.method, "subject": self.subject, "prior": self.prior}
        stamp = {"seed": self.seed, "wall_time_s": self.wall_time_s, "created": self.created, "versions": self.versions}
        return result_attrs(netcdf.FIBERS, fields, groups, options=self.method_options, **stamp), groups

    @classmethod
    def from_layout(cls, attrs: dict[str, Any], groups: dict[str, Group]) -> FiberSamples:
        """Rebuild from the plain data of a file (:func:`inference.results.netcdf.read`)."""
        ss = {k: v for k, (_, v) in groups["sample_stats"].variables.items()}
        const = {k: v for k, (_, v) in groups["constant_data"].variables.items()} if "constant_data" in groups else {}
        seed = int(attrs.get("seed", -1))
        return cls(
            samples=groups["posterior"].variables["x"][1],
            target=groups["observed_data"].variables["x"][1],
            fiber_loss=ss["fiber_loss"],
            method=str(attrs["method"]),
            subject=str(attrs["subject"]),
            prior=str(attrs["prior"]),
            method_options=attr_json(attrs.get("method_options", "{}")),
            seed=None if seed < 0 else seed,
            wall_time_s=float(attrs.get("wall_time_s", float("nan"))),
            traces={k: v for k, v in ss.items() if k != "fiber_loss"},
            gamma=const.get("gamma"),
            baselines={k[: -len("_loss")]: v for k, v in const.items() if k.endswith("_loss")},
            neighbour=const.get("neighbour"),
            augmented=const.get("augmented"),
            created=str(attrs.get("created_at", "")),
            versions={"zoo": str(attrs.get("zoo_version", "")), "torch": str(attrs.get("torch_version", ""))},
        )


def read_fibers(path: str | os.PathLike) -> FiberSamples:
    """Read a file written by :meth:`FiberSamples.save`.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if it is not a zoo fiber file.
    """
    attrs, groups = netcdf.read(path, (netcdf.FIBERS,), kind="fiber")
    try:
        return FiberSamples.from_layout(attrs, groups)
    except (KeyError, ValueError, TypeError) as e:
        raise ValueError(f"{path} is a damaged zoo fiber file ({type(e).__name__}: {e})") from None
