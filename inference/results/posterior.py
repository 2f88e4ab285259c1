"""Posterior draws and their file: :class:`PosteriorSamples` and :func:`read_posterior`.

One run writes one NetCDF4 file (see :mod:`inference.results.netcdf`)::

    /                      root attributes: provenance (see below)
    /posterior             one variable per parameter, dims (chain, draw, observation)
    /prior                 one variable per parameter, dims (chain, draw)            (prior draws, chain = 1)
    /observed_data         x, dims (observation, x_dim)   [x_dim_0, x_dim_1, ... for multi-dimensional x]
    /posterior_predictive  x, dims (chain, draw, observation, x_dim)                 (re-simulated posterior draws)
    /sample_stats          per-draw statistics (chain, draw, observation), per-observation (observation) or
                           (observation, parameter) statistics, e.g. ABC distances, R-hat, ESS, the
                           misspecification score (misspecification_distance, misspecification_pvalue)
    /constant_data         theta_true, dims (observation, parameter)                 (only when the truth is known)

Root attributes (strings and numbers; dicts as JSON strings): ``zoo_format = "zoo.posterior"``,
``zoo_format_version``, ``method``, ``simulator``, ``simulator_options``, ``method_options``, ``budget``, ``seed``,
``param_names``, ``observation_names``, ``wall_time_s``, ``created``, ``zoo_version``, ``torch_version``,
``arviz_version`` / ``inference_library`` (the ArviZ convention). The file opens with ``arviz.from_netcdf``
(0.2x), ``xarray.open_datatree`` and plain ``h5py``; see docs/results.md.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

import zoo
from inference.results import netcdf
from inference.results.netcdf import Group, ResultFile, attr_json

FORMAT = netcdf.POSTERIOR
FORMAT_VERSION = netcdf.FORMAT_VERSION


@dataclass
class PosteriorSamples(ResultFile):
    """Posterior draws for one or more observations, with everything needed to judge and reproduce them.

    Attributes:
        draws: posterior draws, shape (chain, draw, observation, D).
        param_names: the D parameter names.
        observation: the observations, shape (observation, *obs_shape).
        method: the method name, e.g. ``"abc"``.
        simulator: the simulator name.
        simulator_options: the simulator's options.
        method_options: the method's options (as a plain dict).
        budget: the simulation budget.
        seed: the seed of the run's generator (``None`` if not seeded).
        wall_time_s: seconds the posterior took (fit + sampling).
        observation_names: names of the observation coordinates (1-D observations), or ``None``.
        theta_true: the true parameters where known (synthetic observations), shape (observation, D).
        prior_draws: draws from the prior for comparison, shape (draw, D).
        predictive: re-simulations of posterior draws, shape (chain, draw', observation, *obs_shape) with
            draw' <= draw (the first draw' draws of each chain).
        sample_stats: named statistics; by number of dimensions: 3 = per draw (chain, draw, observation),
            1 = per observation (observation,), 2 = per observation and parameter (observation, D).
        notes: what the run could not do and why (e.g. no re-simulation without the simulator), one line each.
        created: ISO time stamp (UTC).
        versions: library versions (zoo, torch).
    """

    draws: np.ndarray
    param_names: tuple[str, ...]
    observation: np.ndarray
    method: str
    simulator: str
    simulator_options: dict[str, Any] = field(default_factory=dict)
    method_options: dict[str, Any] = field(default_factory=dict)
    budget: int | None = None
    seed: int | None = None
    wall_time_s: float = float("nan")
    observation_names: tuple[str, ...] | None = None
    theta_true: np.ndarray | None = None
    prior_draws: np.ndarray | None = None
    predictive: np.ndarray | None = None
    sample_stats: dict[str, np.ndarray] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    created: str = ""
    versions: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.notes = list(self.notes)
        self.draws = as_numpy(self.draws)
        self.observation = as_numpy(self.observation)
        self.param_names = tuple(self.param_names)
        if self.draws.ndim != 4 or self.draws.shape[-1] != len(self.param_names):
            raise ValueError(
                f"draws must have shape (chain, draw, observation, {len(self.param_names)}), got {self.draws.shape}"
            )
        if self.observation.shape[0] != self.draws.shape[2]:
            raise ValueError(
                f"observation has {self.observation.shape[0]} rows but draws have {self.draws.shape[2]} observations"
            )
        if self.theta_true is not None:
            self.theta_true = as_numpy(self.theta_true).reshape(self.n_observations, self.dim)
        if self.prior_draws is not None:
            self.prior_draws = as_numpy(self.prior_draws).reshape(-1, self.dim)
        if self.predictive is not None:
            self.predictive = as_numpy(self.predictive)
        self.sample_stats = {k: as_numpy(v) for k, v in self.sample_stats.items()}
        if self.observation_names is not None:
            self.observation_names = tuple(self.observation_names)
        self.created = self.created or now()
        self.versions = self.versions or versions()

    @property
    def n_observations(self) -> int:
        return self.draws.shape[2]

    @property
    def dim(self) -> int:
        return self.draws.shape[3]

    @property
    def obs_shape(self) -> tuple[int, ...]:
        return tuple(self.observation.shape[1:])

    def flat(self, observation: int | None = None) -> np.ndarray:
        """Draws with chains merged: (chain * draw, observation, D), or (chain * draw, D) for one observation."""
        s = self.draws.reshape(-1, *self.draws.shape[2:])
        return s if observation is None else s[:, observation]

    def summary(self) -> dict[str, np.ndarray]:
        """Posterior mean and standard deviation per observation and parameter, each (observation, D)."""
        s = self.flat()
        return {"mean": s.mean(0), "sd": s.std(0, ddof=1) if s.shape[0] > 1 else np.zeros(s.shape[1:])}

    def headline(self) -> str:
        """One line: simulator, method, budget, seed, how many observations, chains and draws, and the time."""
        chains, draws = self.draws.shape[:2]
        return (
            f"{self.simulator} {self.simulator_options}, method {self.method} (budget {self.budget}, "
            f"seed {self.seed}), {self.n_observations} observation(s) x {chains} chain(s) x {draws} draws, "
            f"{self.wall_time_s:.1f} s"
        )

    def describe(self, *, max_observations: int = 5, truth: bool = False) -> list[str]:
        """Lines a person reads: per observation the posterior mean +- sd, the re-simulation error, method-specific
        statistics (ABC tolerance, R-hat, ESS, divergences) and, with ``truth``, how many truths lie inside the
        central 90% intervals; then how many observations were left out."""
        s, lines = self.summary(), []
        resim = self.sample_stats.get("resimulation_error")
        shown = min(self.n_observations, max_observations)
        for i in range(shown):
            head = f"observation {i}: " if self.n_observations > 1 else ""
            pad = " " * len(head)
            parts = [f"{p} {s['mean'][i, d]:.3g} ± {s['sd'][i, d]:.2g}" for d, p in enumerate(self.param_names)]
            lines.append(f"{head}posterior mean ± sd: " + ", ".join(parts))
            if truth and self.theta_true is not None:
                lo, hi = np.quantile(self.flat(i), [0.05, 0.95], axis=0)
                inside = int(((lo < self.theta_true[i]) & (self.theta_true[i] < hi)).sum())
                lines.append(f"{pad}truth inside the central 90% interval for {inside}/{self.dim} parameters")
            if resim is not None:
                r = resim[:, :, i]
                r = r[np.isfinite(r)]  # drop draws that were not re-simulated (NaN)
                lines.append(
                    f"{pad}re-simulation error ||s(theta) - x_o||: mean {r.mean():.4g}, median {np.median(r):.4g}"
                )
            if "eps" in self.sample_stats:
                eps = float(self.sample_stats["eps"][i])
                lines.append(f"{pad}ABC tolerance eps (largest accepted standardized distance): {eps:.3g}")
            for k in ("r_hat", "ess", "divergences"):
                if k in self.sample_stats:
                    v = np.atleast_1d(np.asarray(self.sample_stats[k])[i])
                    lines.append(f"{pad}{k}: {np.array2string(v, precision=3)}")
        if self.n_observations > shown:
            lines.append(f"... and {self.n_observations - shown} more observations in the file")
        return lines

    def warnings(self, level: float = 0.01) -> list[str]:
        """One line per thing a person should know before trusting the result: notes (what could not be done) and
        observations unlike anything the simulator produces (misspecification p-value below ``level``)."""
        lines = [f"note: {n}" for n in self.notes]
        for i, p in self.misspecified(level):
            lines.append(
                f"warning: observation {i} looks unlike anything the simulator produces (misspecification p-value "
                f"{p:.2g}); treat its posterior with suspicion"
            )
        return lines

    def misspecified(self, level: float = 0.01) -> list[tuple[int, float]]:
        """``(observation, p-value)`` of the observations whose misspecification p-value is below ``level``."""
        p = self.sample_stats.get("misspecification_pvalue")
        if p is None:
            return []
        return [(int(i), float(p[i])) for i in np.flatnonzero(np.asarray(p) < level)]

    # -- file --------------------------------------------------------------------------------------------
    def layout(self) -> tuple[dict[str, Any], dict[str, Group]]:
        """Root attributes and groups of the result file (see the module docstring)."""
        n_chain, n_draw, n_obs, _ = self.draws.shape
        obs_idx = np.arange(n_obs)
        x_dims = x_dim_names(self.obs_shape)
        x_coords = {}
        if self.observation_names is not None and len(x_dims) == 1:
            x_coords[x_dims[0]] = list(self.observation_names)
        coords = {"chain": np.arange(n_chain), "draw": np.arange(n_draw), "observation": obs_idx}
        axes = ("chain", "draw", "observation")
        groups = {"posterior": Group({p: (axes, self.draws[..., i]) for i, p in enumerate(self.param_names)}, coords)}
        if self.prior_draws is not None:
            groups["prior"] = Group(
                {p: (("chain", "draw"), self.prior_draws[None, :, i]) for i, p in enumerate(self.param_names)},
                {"chain": [0], "draw": np.arange(self.prior_draws.shape[0])},
            )
        groups["observed_data"] = Group(
            {"x": (("observation", *x_dims), self.observation)}, {"observation": obs_idx, **x_coords}
        )
        if self.predictive is not None:
            pc, pd = self.predictive.shape[:2]
            groups["posterior_predictive"] = Group(
                {"x": ((*axes, *x_dims), self.predictive)},
                {"chain": np.arange(pc), "draw": np.arange(pd), "observation": obs_idx, **x_coords},
            )
        if self.sample_stats:
            groups["sample_stats"] = self._stats_group(n_chain, n_draw, obs_idx)
        if self.theta_true is not None:
            groups["constant_data"] = Group(
                {"theta_true": (("observation", "parameter"), self.theta_true)},
                {"observation": obs_idx, "parameter": list(self.param_names)},
            )
        attrs = self._attrs()
        shared = {k: attrs[k] for k in ("created_at", "inference_library", "inference_library_version", "method")}
        for g in groups.values():
            g.attrs.update(shared)
        return attrs, groups

    def _stats_group(self, n_chain: int, n_draw: int, obs_idx: np.ndarray) -> Group:
        dims = {3: ("chain", "draw", "observation"), 1: ("observation",), 2: ("observation", "parameter")}
        stats = {}
        for k, v in self.sample_stats.items():
            if v.ndim not in dims:
                raise ValueError(f"sample_stats[{k!r}] must have 1, 2 or 3 dimensions, got shape {v.shape}")
            stats[k] = (dims[v.ndim], v)
        c: dict[str, Any] = {"observation": obs_idx}
        if any(v.ndim == 3 for v in self.sample_stats.values()):
            c |= {"chain": np.arange(n_chain), "draw": np.arange(n_draw)}
        if any(v.ndim == 2 for v in self.sample_stats.values()):
            c["parameter"] = list(self.param_names)
        return Group(stats, c)

    def _attrs(self) -> dict[str, Any]:
        return {
            "zoo_format": FORMAT,
            "zoo_format_version": FORMAT_VERSION,
            "method": self.method,
            "simulator": self.simulator,
            "simulator_options": json.dumps(self.simulator_options, sort_keys=True),
            "method_options": json.dumps(self.method_options, sort_keys=True),
            "budget": -1 if self.budget is None else int(self.budget),
            "seed": -1 if self.seed is None else int(self.seed),
            "param_names": json.dumps(list(self.param_names)),
            "observation_names": json.dumps(None if self.observation_names is None else list(self.observation_names)),
            "notes": json.dumps(self.notes),
            **provenance(self.wall_time_s, self.created, self.versions),
        }

    @classmethod
    def from_layout(cls, attrs: dict[str, Any], groups: dict[str, Group]) -> PosteriorSamples:
        """Rebuild from the plain data of a file (:func:`inference.results.netcdf.read`)."""
        names = tuple(attr_json(attrs["param_names"]))
        post = groups["posterior"].variables
        draws = np.stack([post[p][1] for p in names], -1)
        prior = None
        if "prior" in groups:
            pr = groups["prior"].variables
            prior = np.stack([pr[p][1].reshape(-1) for p in names], -1)
        predictive = groups["posterior_predictive"].variables["x"][1] if "posterior_predictive" in groups else None
        stats = {k: v for k, (_, v) in groups["sample_stats"].variables.items()} if "sample_stats" in groups else {}
        truth = groups["constant_data"].variables["theta_true"][1] if "constant_data" in groups else None
        obs_names = attr_json(attrs.get("observation_names", "null"))
        budget, seed = int(attrs.get("budget", -1)), int(attrs.get("seed", -1))
        return cls(
            draws=draws,
            param_names=names,
            observation=groups["observed_data"].variables["x"][1],
            method=str(attrs["method"]),
            simulator=str(attrs["simulator"]),
            simulator_options=attr_json(attrs.get("simulator_options", "{}")),
            method_options=attr_json(attrs.get("method_options", "{}")),
            budget=None if budget < 0 else budget,
            seed=None if seed < 0 else seed,
            wall_time_s=float(attrs.get("wall_time_s", float("nan"))),
            observation_names=None if obs_names is None else tuple(obs_names),
            theta_true=truth,
            prior_draws=prior,
            predictive=predictive,
            sample_stats=stats,
            notes=attr_json(attrs.get("notes", "[]")),
            created=str(attrs.get("created_at", "")),
            versions={"zoo": str(attrs.get("zoo_version", "")), "torch": str(attrs.get("torch_version", ""))},
        )


def read_posterior(path: str | os.PathLike, *, observations: Any = None) -> PosteriorSamples:
    """Read a result file written by :meth:`PosteriorSamples.save` (or the posterior part of a calibration file).

    Arguments:
        path: the file.
        observations: read only these observations (an index, a list or a slice; e.g. ``slice(0, 10)``): the rest
            stays on disk, so one observation of a million reads in milliseconds.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if it is not a zoo posterior file (one-line message).
    """
    select = None
    if observations is not None:
        select = {"observation": [observations] if isinstance(observations, int) else observations}
    attrs, groups = netcdf.read(path, (netcdf.POSTERIOR, netcdf.CALIBRATION), kind="posterior", select=select)
    try:
        return PosteriorSamples.from_layout(attrs, groups)
    except (KeyError, ValueError, TypeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is a damaged zoo posterior file ({type(e).__name__}: {e})") from None


def x_dim_names(obs_shape: tuple[int, ...]) -> tuple[str, ...]:
    """Dimension names of one observation: ``x_dim`` for vectors, ``x_dim_0, x_dim_1, ...`` otherwise."""
    if len(obs_shape) == 1:
        return ("x_dim",)
    return tuple(f"x_dim_{i}" for i in range(len(obs_shape)))


def as_numpy(a: Any) -> np.ndarray:
    """A tensor or array-like as a NumPy array (on the CPU)."""
    if isinstance(a, torch.Tensor):
        return a.detach().to("cpu").numpy()
    return np.asarray(a)


def provenance(wall_time_s: float, created: str, versions: dict[str, str]) -> dict[str, Any]:
    """The provenance attributes every result file carries (time, creation, versions; ArviZ's library fields)."""
    return {
        "wall_time_s": float(wall_time_s),
        "created_at": created,
        "zoo_version": versions.get("zoo", ""),
        "torch_version": versions.get("torch", ""),
        "inference_library": "zoo",
        "inference_library_version": versions.get("zoo", ""),
    }


def result_attrs(
    fmt: str,
    fields: dict[str, Any],
    groups: dict[str, Any],
    *,
    options: dict[str, Any],
    seed: int | None,
    wall_time_s: float,
    created: str,
    versions: dict[str, str],
) -> dict[str, Any]:
    """The root attributes of a result file (format tag, ``fields``, options as JSON, seed, provenance); every group
    gets the ArviZ-shared ones (``created_at``, ``inference_library``, ``method``)."""
    from inference.results import netcdf

    attrs = {
        "zoo_format": fmt,
        "zoo_format_version": netcdf.FORMAT_VERSION,
        **fields,
        "method_options": json.dumps(options, sort_keys=True, default=str),
        "seed": -1 if seed is None else int(seed),
        **provenance(wall_time_s, created, versions),
    }
    for g in groups.values():
        g.attrs.update({k: attrs[k] for k in ("created_at", "inference_library", "method")})
    return attrs


def now() -> str:
    """ISO time stamp (UTC) of a result's creation."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def versions() -> dict[str, str]:
    """The library versions recorded with a result."""
    return {"zoo": str(zoo.__version__), "torch": str(torch.__version__)}
