"""Posterior result objects and their file: NetCDF4 (= HDF5) with ArviZ groups.

This is the only module that touches xarray / h5netcdf / arviz. One run writes one file::

    /                      root attributes: provenance (see below)
    /posterior             one variable per parameter, dims (chain, draw, observation)
    /prior                 one variable per parameter, dims (chain, draw)            (prior draws, chain = 1)
    /observed_data         x, dims (observation, x_dim)   [x_dim_0, x_dim_1, ... for multi-dimensional x]
    /posterior_predictive  x, dims (chain, draw, observation, x_dim)                 (re-simulated posterior draws)
    /sample_stats          per-draw statistics (chain, draw, observation), per-observation (observation) or
                           (observation, parameter) statistics, e.g. ABC distances, R-hat, ESS
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
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

import zoo

FORMAT = "zoo.posterior"
CALIBRATION_FORMAT = "zoo.calibration"
FORMAT_VERSION = 1
ENGINE = "h5netcdf"


@dataclass
class PosteriorSamples:
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
    created: str = ""
    versions: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.draws = _np(self.draws)
        self.observation = _np(self.observation)
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
            self.theta_true = _np(self.theta_true).reshape(self.n_observations, self.dim)
        if self.prior_draws is not None:
            self.prior_draws = _np(self.prior_draws).reshape(-1, self.dim)
        if self.predictive is not None:
            self.predictive = _np(self.predictive)
        self.sample_stats = {k: _np(v) for k, v in self.sample_stats.items()}
        if self.observation_names is not None:
            self.observation_names = tuple(self.observation_names)
        if not self.created:
            self.created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        if not self.versions:
            self.versions = {"zoo": str(zoo.__version__), "torch": str(torch.__version__)}

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

    # -- file --------------------------------------------------------------------------------------------
    def to_datatree(self) -> xr.DataTree:
        """The ArviZ-layout :class:`xarray.DataTree` of this result (see the module docstring)."""
        n_chain, n_draw, n_obs, _ = self.draws.shape
        obs_idx = np.arange(n_obs)
        x_dims = _x_dims(self.obs_shape)
        x_coords = {}
        if self.observation_names is not None and len(x_dims) == 1:
            x_coords[x_dims[0]] = list(self.observation_names)
        coords = {"chain": np.arange(n_chain), "draw": np.arange(n_draw), "observation": obs_idx}
        post = xr.Dataset(
            {p: (("chain", "draw", "observation"), self.draws[..., i]) for i, p in enumerate(self.param_names)},
            coords=coords,
        )
        groups: dict[str, xr.Dataset] = {"posterior": post}
        if self.prior_draws is not None:
            nd = self.prior_draws.shape[0]
            groups["prior"] = xr.Dataset(
                {p: (("chain", "draw"), self.prior_draws[None, :, i]) for i, p in enumerate(self.param_names)},
                coords={"chain": [0], "draw": np.arange(nd)},
            )
        groups["observed_data"] = xr.Dataset(
            {"x": (("observation", *x_dims), self.observation)}, coords={"observation": obs_idx, **x_coords}
        )
        if self.predictive is not None:
            pc, pd = self.predictive.shape[:2]
            groups["posterior_predictive"] = xr.Dataset(
                {"x": (("chain", "draw", "observation", *x_dims), self.predictive)},
                coords={"chain": np.arange(pc), "draw": np.arange(pd), "observation": obs_idx, **x_coords},
            )
        stats = {}
        for k, v in self.sample_stats.items():
            dims = {3: ("chain", "draw", "observation"), 1: ("observation",), 2: ("observation", "parameter")}
            if v.ndim not in dims:
                raise ValueError(f"sample_stats[{k!r}] must have 1, 2 or 3 dimensions, got shape {v.shape}")
            stats[k] = (dims[v.ndim], v)
        if stats:
            c = {"observation": obs_idx}
            if any(v.ndim == 3 for v in self.sample_stats.values()):
                c |= {"chain": np.arange(n_chain), "draw": np.arange(n_draw)}
            if any(v.ndim == 2 for v in self.sample_stats.values()):
                c["parameter"] = list(self.param_names)
            groups["sample_stats"] = xr.Dataset(stats, coords=c)
        if self.theta_true is not None:
            groups["constant_data"] = xr.Dataset(
                {"theta_true": (("observation", "parameter"), self.theta_true)},
                coords={"observation": obs_idx, "parameter": list(self.param_names)},
            )
        attrs = self._attrs()
        group_attrs = {k: attrs[k] for k in ("created_at", "inference_library", "inference_library_version", "method")}
        for ds in groups.values():
            ds.attrs.update(group_attrs)
        tree = xr.DataTree.from_dict({"/": xr.Dataset(attrs=attrs), **{f"/{k}": v for k, v in groups.items()}})
        return tree

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
            "wall_time_s": float(self.wall_time_s),
            "created_at": self.created,
            "zoo_version": self.versions.get("zoo", ""),
            "torch_version": self.versions.get("torch", ""),
            "inference_library": "zoo",
            "inference_library_version": self.versions.get("zoo", ""),
        }

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the result file atomically (temporary name in the same folder, then ``os.replace``).

        Raises:
            FileExistsError: if ``path`` exists and ``overwrite`` is false.
        """
        return write_atomic(path, self.to_datatree(), overwrite=overwrite)


@dataclass
class CalibrationReport:
    """The outcome of a simulation-based calibration run (see :func:`inference.evaluation.calibration.calibrate`).

    Attributes:
        result: the posterior draws for all N test cases (observation dimension = test case), with the truths.
        levels: confidence levels alpha, shape (L,).
        inlier: inlier fraction of the central alpha-intervals, shape (L, D).
        error_per_parameter: marginal calibration error per parameter, shape (D,).
        error: overall marginal calibration error (pooled over parameters).
        sbc_ranks: SBC ranks, shape (N, D).
        sbc_pvalues: chi-square p-values of rank uniformity, shape (D,).
        hpd_coverage: expected coverage of HPD regions per level, shape (L,), or ``None`` without densities.
        resimulation_error_mean / resimulation_error_median: over re-simulated posterior draws and cases.
        rmse_mean / rmse_mean_per_parameter: RMSE of the posterior mean.
        rmse_map / rmse_map_per_parameter: RMSE of the mean-shift MAP on the first ``n_map`` cases (NaN if 0).
        n_map: number of cases with a MAP estimate.
        seconds: wall time of the posterior run and the diagnostics.
    """

    result: PosteriorSamples
    levels: np.ndarray
    inlier: np.ndarray
    error_per_parameter: np.ndarray
    error: float
    sbc_ranks: np.ndarray
    sbc_pvalues: np.ndarray
    hpd_coverage: np.ndarray | None
    resimulation_error_mean: float
    resimulation_error_median: float
    rmse_mean: float
    rmse_mean_per_parameter: np.ndarray
    rmse_map: float
    rmse_map_per_parameter: np.ndarray
    n_map: int = 0
    seconds: float = float("nan")

    _SCALARS = (
        "error",
        "resimulation_error_mean",
        "resimulation_error_median",
        "rmse_mean",
        "rmse_map",
        "n_map",
        "seconds",
    )

    def table(self) -> str:
        """A plain-text table: one row per parameter plus an overall row."""
        r = self.result
        head = f"{'parameter':<12} {'calib. err':>10} {'SBC p':>9} {'RMSE mean':>10} {'RMSE MAP':>9}"
        rows = [head, "-" * len(head)]
        for i, p in enumerate(r.param_names):
            rows.append(
                f"{p:<12} {100 * self.error_per_parameter[i]:>9.2f}% {self.sbc_pvalues[i]:>9.3g} "
                f"{self.rmse_mean_per_parameter[i]:>10.4f} {self.rmse_map_per_parameter[i]:>9.4f}"
            )
        rows.append(
            f"{'all':<12} {100 * self.error:>9.2f}% {self.sbc_pvalues.min():>9.3g} {self.rmse_mean:>10.4f} "
            f"{self.rmse_map:>9.4f}"
        )
        n = r.draws.shape[0] * r.draws.shape[1]
        rows.append(
            f"re-simulation error: mean {self.resimulation_error_mean:.4g}, median "
            f"{self.resimulation_error_median:.4g} ({r.n_observations} test cases, {n} draws each, "
            f"method {r.method}, budget {r.budget})"
        )
        return "\n".join(rows)

    def to_datatree(self) -> xr.DataTree:
        """The posterior file layout of :attr:`result` plus a ``calibration`` group with the diagnostics."""
        tree = self.result.to_datatree()
        names = list(self.result.param_names)
        data = {
            "inlier_fraction": (("level", "parameter"), self.inlier),
            "calibration_error": (("parameter",), self.error_per_parameter),
            "sbc_rank": (("observation", "parameter"), self.sbc_ranks),
            "sbc_pvalue": (("parameter",), self.sbc_pvalues),
            "rmse_mean": (("parameter",), self.rmse_mean_per_parameter),
            "rmse_map": (("parameter",), self.rmse_map_per_parameter),
        }
        if self.hpd_coverage is not None:
            data["hpd_coverage"] = (("level",), self.hpd_coverage)
        ds = xr.Dataset(
            data,
            coords={
                "level": self.levels,
                "parameter": names,
                "observation": np.arange(self.result.n_observations),
            },
            attrs={
                f"{k}_overall" if k in ("error", "rmse_mean", "rmse_map") else k: getattr(self, k)
                for k in self._SCALARS
            },
        )
        tree["calibration"] = xr.DataTree(ds)
        tree.attrs["zoo_format"] = CALIBRATION_FORMAT
        return tree

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write ``calibration.nc`` atomically; refuses to overwrite unless asked."""
        return write_atomic(path, self.to_datatree(), overwrite=overwrite)


def write_atomic(path: str | os.PathLike, tree: xr.DataTree, *, overwrite: bool = False) -> Path:
    """Write a DataTree as NetCDF4 (h5netcdf engine) to a temporary name, then rename it to ``path``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass --overwrite to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    try:
        tree.to_netcdf(tmp, engine=ENGINE, mode="w")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_posterior(path: str | os.PathLike) -> PosteriorSamples:
    """Read a result file written by :meth:`PosteriorSamples.save`.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if it is not a zoo posterior file (one-line message).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"result file {path} does not exist")
    try:
        tree = xr.open_datatree(path, engine=ENGINE)
    except Exception as e:  # h5netcdf / h5py raise OSError or their own types for foreign files
        raise ValueError(f"{path} is not a readable NetCDF4 result file ({type(e).__name__})") from e
    with tree:
        tree = tree.load()
    attrs = dict(tree.attrs)
    if attrs.get("zoo_format") not in (FORMAT, CALIBRATION_FORMAT):
        raise ValueError(f"{path} is not a zoo posterior file (no zoo_format={FORMAT!r} attribute)")
    names = tuple(json.loads(attrs["param_names"]))
    post = tree["posterior"].to_dataset()
    draws = np.stack([post[p].values for p in names], -1)
    obs = tree["observed_data"].to_dataset()["x"].values
    groups = set(tree.children)
    prior = None
    if "prior" in groups:
        pr = tree["prior"].to_dataset()
        prior = np.stack([pr[p].values.reshape(-1) for p in names], -1)
    predictive = tree["posterior_predictive"].to_dataset()["x"].values if "posterior_predictive" in groups else None
    stats = {}
    if "sample_stats" in groups:
        ss = tree["sample_stats"].to_dataset()
        stats = {k: ss[k].values for k in ss.data_vars}
    truth = tree["constant_data"].to_dataset()["theta_true"].values if "constant_data" in groups else None
    obs_names = json.loads(attrs.get("observation_names", "null"))
    budget, seed = int(attrs.get("budget", -1)), int(attrs.get("seed", -1))
    return PosteriorSamples(
        draws=draws,
        param_names=names,
        observation=obs,
        method=str(attrs["method"]),
        simulator=str(attrs["simulator"]),
        simulator_options=json.loads(attrs.get("simulator_options", "{}")),
        method_options=json.loads(attrs.get("method_options", "{}")),
        budget=None if budget < 0 else budget,
        seed=None if seed < 0 else seed,
        wall_time_s=float(attrs.get("wall_time_s", float("nan"))),
        observation_names=None if obs_names is None else tuple(obs_names),
        theta_true=truth,
        prior_draws=prior,
        predictive=predictive,
        sample_stats=stats,
        created=str(attrs.get("created_at", "")),
        versions={"zoo": str(attrs.get("zoo_version", "")), "torch": str(attrs.get("torch_version", ""))},
    )


def read_calibration(path: str | os.PathLike) -> CalibrationReport:
    """Read a ``calibration.nc`` written by :meth:`CalibrationReport.save`.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if it is not a zoo calibration file.
    """
    result = read_posterior(path)
    tree = xr.open_datatree(Path(path), engine=ENGINE)
    with tree:
        if tree.attrs.get("zoo_format") != CALIBRATION_FORMAT or "calibration" not in tree.children:
            raise ValueError(f"{path} is not a zoo calibration file (no calibration group)")
        ds = tree["calibration"].to_dataset().load()
    a = ds.attrs
    return CalibrationReport(
        result=result,
        levels=ds["level"].values,
        inlier=ds["inlier_fraction"].values,
        error_per_parameter=ds["calibration_error"].values,
        error=float(a["error_overall"]),
        sbc_ranks=ds["sbc_rank"].values,
        sbc_pvalues=ds["sbc_pvalue"].values,
        hpd_coverage=ds["hpd_coverage"].values if "hpd_coverage" in ds else None,
        resimulation_error_mean=float(a["resimulation_error_mean"]),
        resimulation_error_median=float(a["resimulation_error_median"]),
        rmse_mean=float(a["rmse_mean_overall"]),
        rmse_mean_per_parameter=ds["rmse_mean"].values,
        rmse_map=float(a["rmse_map_overall"]),
        rmse_map_per_parameter=ds["rmse_map"].values,
        n_map=int(a["n_map"]),
        seconds=float(a["seconds"]),
    )


def read_result(path: str | os.PathLike) -> PosteriorSamples | CalibrationReport:
    """Read a zoo result file of either kind: a :class:`CalibrationReport` or a :class:`PosteriorSamples`."""
    result = read_posterior(path)
    with xr.open_datatree(Path(path), engine=ENGINE) as tree:
        kind = tree.attrs.get("zoo_format")
    return read_calibration(path) if kind == CALIBRATION_FORMAT else result


def to_inference_data(result: PosteriorSamples) -> Any:
    """The result as an ``arviz.InferenceData`` (arviz 0.2x), for ArviZ's summaries and plots."""
    import arviz as az

    tree = result.to_datatree()
    groups = {name: tree[name].to_dataset() for name in tree.children}
    return az.InferenceData(attrs=dict(tree.attrs), **groups)


def _x_dims(obs_shape: tuple[int, ...]) -> tuple[str, ...]:
    if len(obs_shape) == 1:
        return ("x_dim",)
    return tuple(f"x_dim_{i}" for i in range(len(obs_shape)))


def _np(a: Any) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().to("cpu").numpy()
    return np.asarray(a)


# -- fiber samples ---------------------------------------------------------------------------------------------
FIBER_FORMAT = "zoo.fibers"


@dataclass
class FiberSamples:
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
        self.samples, self.target, self.fiber_loss = _np(self.samples), _np(self.target), _np(self.fiber_loss)
        if self.samples.ndim < 4 or self.samples.shape[2] != self.target.shape[0]:
            raise ValueError(
                f"samples must have shape (chain, draw, target, *shape) with target = {self.target.shape[0]}, "
                f"got {self.samples.shape}"
            )
        if self.samples.shape[3:] != self.target.shape[1:]:
            raise ValueError(f"samples of shape {self.samples.shape[3:]} do not match targets {self.target.shape[1:]}")
        if self.fiber_loss.shape != self.samples.shape[:3]:
            raise ValueError(f"fiber_loss must have shape {self.samples.shape[:3]}, got {self.fiber_loss.shape}")
        self.traces = {k: _np(v) for k, v in self.traces.items()}
        self.baselines = {k: _np(v).reshape(self.target.shape[0]) for k, v in self.baselines.items()}
        self.gamma = None if self.gamma is None else _np(self.gamma)
        self.neighbour = None if self.neighbour is None else _np(self.neighbour)
        self.augmented = None if self.augmented is None else _np(self.augmented)
        if not self.created:
            self.created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        if not self.versions:
            self.versions = {"zoo": str(zoo.__version__), "torch": str(torch.__version__)}

    @property
    def n_targets(self) -> int:
        return self.target.shape[0]

    def ordered(self, target: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """The samples of one target sorted by fiber loss (chains merged): images (n, *shape) and losses (n,)."""
        x = self.samples[:, :, target].reshape(-1, *self.target.shape[1:])
        loss = self.fiber_loss[:, :, target].reshape(-1)
        order = np.argsort(loss, kind="stable")
        return x[order], loss[order]

    def to_datatree(self) -> xr.DataTree:
        """The ArviZ-layout :class:`xarray.DataTree` of this result."""
        n_chain, n_draw, n_target = self.samples.shape[:3]
        x_dims = _x_dims(self.target.shape[1:])
        c = {"chain": np.arange(n_chain), "draw": np.arange(n_draw), "target": np.arange(n_target)}
        groups = {
            "posterior": xr.Dataset({"x": (("chain", "draw", "target", *x_dims), self.samples)}, coords=c),
            "observed_data": xr.Dataset({"x": (("target", *x_dims), self.target)}, coords={"target": c["target"]}),
        }
        stats: dict[str, Any] = {"fiber_loss": (("chain", "draw", "target"), self.fiber_loss)}
        stats |= {k: (("chain", "draw", "target", "step"), v) for k, v in self.traces.items()}
        groups["sample_stats"] = xr.Dataset(stats, coords=c)
        const: dict[str, Any] = {f"{k}_loss": (("target",), v) for k, v in self.baselines.items()}
        if self.neighbour is not None:
            const["neighbour"] = (("target", *x_dims), self.neighbour)
        if self.augmented is not None:
            const["augmented"] = (("target", *x_dims), self.augmented)
        if self.gamma is not None:
            const["gamma"] = (("step",), self.gamma)
        if const:
            groups["constant_data"] = xr.Dataset(const, coords={"target": c["target"]})
        attrs = {
            "zoo_format": FIBER_FORMAT,
            "zoo_format_version": FORMAT_VERSION,
            "method": self.method,
            "subject": self.subject,
            "prior": self.prior,
            "method_options": json.dumps(self.method_options, sort_keys=True, default=str),
            "seed": -1 if self.seed is None else int(self.seed),
            "wall_time_s": float(self.wall_time_s),
            "created_at": self.created,
            "zoo_version": self.versions.get("zoo", ""),
            "torch_version": self.versions.get("torch", ""),
            "inference_library": "zoo",
            "inference_library_version": self.versions.get("zoo", ""),
        }
        for ds in groups.values():
            ds.attrs.update({k: attrs[k] for k in ("created_at", "inference_library", "method")})
        return xr.DataTree.from_dict({"/": xr.Dataset(attrs=attrs), **{f"/{k}": v for k, v in groups.items()}})

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write ``fibers.nc`` atomically (temporary name, then ``os.replace``).

        Raises:
            FileExistsError: if ``path`` exists and ``overwrite`` is false.
        """
        return write_atomic(path, self.to_datatree(), overwrite=overwrite)


def read_fibers(path: str | os.PathLike) -> FiberSamples:
    """Read a file written by :meth:`FiberSamples.save`.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if it is not a zoo fiber file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"result file {path} does not exist")
    try:
        tree = xr.open_datatree(path, engine=ENGINE)
    except Exception as e:  # foreign files raise OSError or the reader's own types
        raise ValueError(f"{path} is not a readable NetCDF4 result file ({type(e).__name__})") from e
    with tree:
        tree = tree.load()
    attrs = dict(tree.attrs)
    if attrs.get("zoo_format") != FIBER_FORMAT:
        raise ValueError(f"{path} is not a zoo fiber file (no zoo_format={FIBER_FORMAT!r} attribute)")
    ss = tree["sample_stats"].to_dataset()
    const = tree["constant_data"].to_dataset() if "constant_data" in tree.children else xr.Dataset()
    seed = int(attrs.get("seed", -1))
    return FiberSamples(
        samples=tree["posterior"].to_dataset()["x"].values,
        target=tree["observed_data"].to_dataset()["x"].values,
        fiber_loss=ss["fiber_loss"].values,
        method=str(attrs["method"]),
        subject=str(attrs["subject"]),
        prior=str(attrs["prior"]),
        method_options=json.loads(attrs.get("method_options", "{}")),
        seed=None if seed < 0 else seed,
        wall_time_s=float(attrs.get("wall_time_s", float("nan"))),
        traces={k: ss[k].values for k in ss.data_vars if k != "fiber_loss"},
        gamma=const["gamma"].values if "gamma" in const else None,
        baselines={k[: -len("_loss")]: const[k].values for k in const.data_vars if k.endswith("_loss")},
        neighbour=const["neighbour"].values if "neighbour" in const else None,
        augmented=const["augmented"].values if "augmented" in const else None,
        created=str(attrs.get("created_at", "")),
        versions={"zoo": str(attrs.get("zoo_version", "")), "torch": str(attrs.get("torch_version", ""))},
    )
