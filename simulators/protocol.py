"""The simulator interface shared by every forward model in zoo.

A simulator is any object with ``name``, ``param_names``, ``prior`` and a batched ``simulate``. Optional
capabilities (``log_likelihood``, ``reference_posterior``, ``n_obs``, ``observation_names``) are present only
where they are tractable and are discovered with ``hasattr``.

Shape conventions (used throughout zoo):

- ``theta``: parameters, shape ``(*, D)``.
- ``x``: observations, shape ``(*, *obs_shape)``; the leading dimensions follow ``theta``.
- ``reference_posterior(x_o, n)`` returns samples shaped ``(n, *batch, D)`` for ``x_o`` shaped
  ``(*batch, *obs_shape)`` (torch's ``sample_shape`` first convention).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Simulator(Protocol):
    """A forward model with a prior over its parameters.

    Attributes:
        name: registry name, e.g. ``"arm"``.
        param_names: the D parameter names, in order.
        obs_shape: the shape of one observation.
        prior: a distribution with ``event_shape == (D,)``.
    """

    name: str
    param_names: tuple[str, ...]
    obs_shape: tuple[int, ...]
    prior: torch.distributions.Distribution

    def simulate(self, theta: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Simulate observations, batched over the leading dimensions of ``theta``."""
        ...


def check_theta(theta: torch.Tensor, dim: int, name: str = "theta") -> torch.Tensor:
    """Validate a parameter tensor: floating point, last dimension ``dim``, all finite.

    Raises:
        ValueError: naming the expected shape, or the first non-finite entry.
    """
    if not isinstance(theta, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (*, {dim}), got {type(theta).__name__}")
    if theta.ndim == 0 or theta.shape[-1] != dim:
        raise ValueError(f"{name} must have shape (*, {dim}), got {tuple(theta.shape)}")
    if not theta.is_floating_point():
        raise ValueError(f"{name} must be floating point, got dtype {theta.dtype}")
    _check_finite(theta, name)
    return theta


def check_observation(x: torch.Tensor, obs_shape: tuple[int, ...], name: str = "x_o") -> torch.Tensor:
    """Validate an observation tensor of shape ``(*, *obs_shape)`` with finite entries."""
    k = len(obs_shape)
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (*, {_fmt(obs_shape)}), got {type(x).__name__}")
    if x.ndim < k or tuple(x.shape[x.ndim - k :]) != tuple(obs_shape):
        raise ValueError(f"{name} must have shape (*, {_fmt(obs_shape)}), got {tuple(x.shape)}")
    _check_finite(x, name)
    return x


def _check_finite(t: torch.Tensor, name: str) -> None:
    bad = ~torch.isfinite(t)
    if bad.any():
        idx = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(f"{name} must be finite, found {t[idx].item()} at index {idx}")


def _fmt(shape: tuple[int, ...]) -> str:
    return ", ".join(str(s) for s in shape)


def parse_set_size(n_obs: int | tuple[int, int] | list[int] | str) -> tuple[int, int]:
    """Turn a set size ``K``, a range ``(lo, hi)`` or a string ``"K"`` / ``"lo-hi"`` / ``"lo:hi"`` into ``(lo, hi)``.

    Raises:
        ValueError: for anything else, or unless ``1 <= lo <= hi``.
    """
    value = n_obs
    if isinstance(value, str):
        parts = value.replace(":", "-").split("-")
        try:
            value = tuple(int(p) for p in parts)
        except ValueError:
            value = None
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if isinstance(value, list | tuple) and len(value) == 1:
        value = (value[0], value[0])
    ok = (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        and 1 <= value[0] <= value[1]
    )
    if not ok:
        raise ValueError(f"n_obs must be a set size K >= 1 or a range lo-hi with 1 <= lo <= hi, got {n_obs!r}")
    return int(value[0]), int(value[1])
