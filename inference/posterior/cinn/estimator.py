"""The trained conditional INN as an estimator: posteriors for observations, saving and loading.

See :mod:`inference.posterior.cinn` for the method; :mod:`inference.posterior.cinn.method` trains it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

import simulators
from inference.estimator_dir import EstimatorFiles, save_estimator
from inference.posterior.cinn.network import ConditionalINN
from inference.posterior.misspecification import Misspecification, SummaryMahalanobis
from simulators import Simulator
from zoo.bounds import build_checked, check_sizes


class CINNPosterior:
    """The cINN posterior for a fixed batch of observations (summaries computed once).

    Attributes:
        has_log_prob: ``True``: exact density of the flow.
    """

    has_log_prob = True

    def __init__(self, model: ConditionalINN, h: torch.Tensor, batch: tuple[int, ...]) -> None:
        self.model, self.h, self.batch = model, h, batch

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws per observation, shape (n, *batch, D)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative integer number of draws, got {n!r}")
        s = self.model.sample_given(n, self.h.reshape(-1, self.h.shape[-1]), generator=generator)
        return s.reshape(n, *self.batch, self.model.dim)

    @torch.no_grad()
    def log_prob(self, theta: torch.Tensor) -> torch.Tensor:
        """log q(theta | x_o) for theta (*sample, *batch, D); returns (*sample, *batch)."""
        if theta.shape[-1] != self.model.dim:
            raise ValueError(f"theta must have shape (*, *batch, {self.model.dim}), got {tuple(theta.shape)}")
        return self.model.log_prob_given(theta.to(self.h), self.h)


class CINNEstimator:
    """A trained conditional INN for one simulator (see :mod:`inference.posterior.cinn`).

    Attributes:
        method: ``"cinn"``.
        simulator, options, budget: what it was trained for and with.
        model: the :class:`ConditionalINN`.
        score: the :class:`~inference.posterior.misspecification.SummaryMahalanobis` misspecification score.
        info: training record (steps, seconds, best validation loss).
    """

    method = "cinn"

    def __init__(
        self,
        model: ConditionalINN,
        *,
        simulator: Simulator,
        options: Any,
        budget: int | None,
        score: SummaryMahalanobis,
        info: dict[str, Any] | None = None,
    ) -> None:
        self.model, self.simulator, self.options, self.budget = model, simulator, options, budget
        self.score, self.info = score, dict(info or {})

    def check_observation(self, x_o: torch.Tensor) -> torch.Tensor:
        """Validate ``x_o`` for the simulator (:func:`simulators.validate_observation`); returns it as float."""
        return simulators.validate_observation(self.simulator, x_o)[0].to(self.model.theta_mean)

    def _batch(self, x_o: torch.Tensor) -> tuple[int, ...]:
        k = len(self.model.element_shape) + int(self.model.set_valued)
        return tuple(x_o.shape[: x_o.ndim - k])

    @torch.no_grad()
    def posterior(self, x_o: torch.Tensor) -> CINNPosterior:
        """The posterior for observations ``x_o`` of shape (*batch, *obs_shape); for sets (*batch, K, *element)."""
        x_o = self.check_observation(x_o)
        return CINNPosterior(self.model, self.model.summarize(x_o), self._batch(x_o))

    @torch.no_grad()
    def misspecification(self, x_o: torch.Tensor) -> Misspecification:
        """Summary-space Mahalanobis distance and p-value of each observation, shapes (*batch)."""
        x_o = self.check_observation(x_o)
        return self.score(self.model.summarize(x_o))

    def save(self, directory: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write ``estimator.json`` + ``weights.safetensors`` (see :func:`inference.methods.save_estimator`)."""
        m = self.model
        config = {
            "dim": m.dim,
            "element_shape": list(m.element_shape),
            "set_valued": m.set_valued,
            "model": m.architecture,
            "training": self.info,
        }
        tensors = {f"model.{k}": v for k, v in m.state_dict().items()}
        tensors.update(self.score.state())
        return save_estimator(
            directory,
            self,
            config=config,
            tensors=tensors,
            overwrite=overwrite,
        )


def load_cinn(files: EstimatorFiles) -> CINNEstimator:
    """Rebuild a :class:`CINNEstimator` from its directory (see :meth:`CINNEstimator.save`)."""
    return load_conditioned(files, ConditionalINN, CINNEstimator)


def load_conditioned(files: EstimatorFiles, model_cls: type, estimator_cls: type) -> Any:
    """Rebuild an estimator of a summary-conditioned network (``model_cls``, built from the saved architecture) from
    its directory, with bounded loading (:mod:`zoo.bounds`): the cINN's and FMPE's shared loader."""
    cfg = files.config
    weights = files.directory / "weights.safetensors"
    shapes = {k: tuple(v.shape) for k, v in files.tensors.items()}
    try:
        sizes = {"dim": cfg["dim"], "element_shape": cfg["element_shape"], "model": cfg["model"]}
        check_sizes(sizes, shapes, str(files.directory / "estimator.json"))  # bounded loading (zoo.bounds)
        model = build_checked(
            lambda: model_cls(
                int(cfg["dim"]), tuple(cfg["element_shape"]), set_valued=bool(cfg["set_valued"]), **cfg["model"]
            ),
            shapes,
            str(files.directory),
            prefix="model.",
        )
        state = {k[len("model.") :]: v for k, v in files.tensors.items() if k.startswith("model.")}
        model.load_state_dict(state)
        score = SummaryMahalanobis.from_state(files.tensors)
        extra = sorted(set(files.tensors) - {f"model.{k}" for k in state} - set(score.state()))
        if extra:
            raise KeyError(f"unexpected tensor {extra[0]!r}")
    except (KeyError, TypeError, RuntimeError) as e:
        raise ValueError(
            f"{weights} does not match {files.directory / 'estimator.json'} ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:120]}); the estimator is corrupt, retrain it (zoo train / --retrain)"
        ) from e
    model.eval()
    return estimator_cls(
        model,
        simulator=files.simulator,
        options=files.options,
        budget=files.budget,
        score=score,
        info=cfg.get("training", {}),
    )
