"""The simulator interface shared by every forward model in zoo.

A simulator is any object with

- ``name`` (str), ``param_names`` (D names), ``prior`` (a torch / pyro distribution with event shape (D,); constrained
  ones too, see :mod:`simulators.priors`), ``obs_shape`` (the shape of one observation), and
- ``simulate(theta, *, generator=None)``: batched over the leading dimensions of ``theta``, randomness only from the
  ``generator``.

Optional capabilities, present only where they are tractable and discovered with ``hasattr``: ``log_likelihood(theta,
x)``, ``reference_posterior(x_o, n, *, generator)`` (exact or near-exact draws), ``n_obs`` + ``element_shape`` (sets of
i.i.d. observations, ``n_obs = (lo, hi)``), ``observation_names``, ``options`` (the keyword arguments it was built
with). A user's object that lacks ``obs_shape`` or a ``generator`` argument, or a plain function, is adapted by
:func:`simulators.as_simulator` / :func:`simulators.from_function` (docs/own-simulator.md).

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
    check_finite(theta, name)
    return theta


def check_observation(x: torch.Tensor, obs_shape: tuple[int, ...], name: str = "x_o") -> torch.Tensor:
    """Validate an observation tensor of shape ``(*, *obs_shape)`` with finite entries."""
    k = len(obs_shape)
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (*, {_fmt(obs_shape)}), got {type(x).__name__}")
    if x.ndim < k or tuple(x.shape[x.ndim - k :]) != tuple(obs_shape):
        raise ValueError(f"{name} must have shape (*, {_fmt(obs_shape)}), got {tuple(x.shape)}")
    check_finite(x, name)
    return x


def check_finite(t: torch.Tensor, name: str) -> None:
    """Raise a one-line ``ValueError`` naming the first NaN / infinite entry of ``t``."""
    bad = ~torch.isfinite(t)
    if bad.any():
        idx = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(f"{name}: value {t[idx].item()} at index {idx} is not finite (NaN or inf); it must be finite")


def validate_observation(simulator: object, x: torch.Tensor, name: str = "x_o") -> tuple[torch.Tensor, tuple[int, ...]]:
    """The one check of observations for ``simulator``: shape (sets of any size in the ``n_obs`` range), finiteness.

    Every reader of observations calls it: the library's ``infer`` and the estimators' ``posterior``, and the
    command line's file readers (through the library). For a set-valued simulator ``x`` holds sets
    ``(*, K, *element_shape)`` with K in its ``n_obs`` range; otherwise ``(*, *obs_shape)``.

    Arguments:
        simulator: the simulator whose observations ``x`` should be.
        x: the observations.
        name: what to call ``x`` in messages (a file name, ``--theta``, ...).

    Returns:
        ``x`` and the shape of one observation (``(K, *element_shape)`` for sets).

    Raises:
        ValueError: one line, for a non-tensor, a wrong shape, an empty set, a K outside the range, or NaN / inf.
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    obs_shape = set_shape(simulator, x, name) if is_set_valued(simulator) else tuple(simulator.obs_shape)
    return check_observation(x, obs_shape, name), obs_shape


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


def is_set_valued(simulator: object) -> bool:
    """Whether ``simulator`` observes sets: it has an ``n_obs`` range ``(lo, hi)`` and an ``element_shape``."""
    return hasattr(simulator, "n_obs") and hasattr(simulator, "element_shape")


def expand_to_set(simulator: object, y: torch.Tensor, n_obs: int | None) -> torch.Tensor:
    """Repeat per-theta values ``y`` (*, *element_shape) into sets (*, K, *element_shape) for a set-valued simulator.

    The caller adds the per-element noise afterwards. For a simulator without sets, ``y`` is returned unchanged.

    Arguments:
        simulator: the simulator whose ``simulate`` was called.
        y: noise-free values, one per theta.
        n_obs: the set size K of this call; ``None``: the top of the simulator's ``n_obs`` range.

    Raises:
        ValueError: a K that is not a positive integer, or ``n_obs`` given to a simulator without sets.
    """
    if not is_set_valued(simulator):
        if n_obs is not None:
            name = simulator.name
            raise ValueError(
                f"n_obs is only accepted by a set-valued {name}; build it with simulators.get('{name}', n_obs=K)"
            )
        return y
    k = simulator.n_obs[1] if n_obs is None else n_obs
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"n_obs must be a positive integer set size, got {k!r}")
    e = len(simulator.element_shape)
    return y.unsqueeze(y.ndim - e).expand(*y.shape[: y.ndim - e], k, *y.shape[y.ndim - e :])


def set_shape(simulator: object, x: torch.Tensor, name: str = "x_o") -> tuple[int, ...]:
    """``(K, *element_shape)`` of the sets ``x`` (*, K, *element_shape) of a set-valued simulator.

    Raises:
        ValueError: one line, for elements of the wrong shape, an empty set, or a K outside the ``n_obs`` range.
    """
    el, (lo, hi) = tuple(simulator.element_shape), simulator.n_obs
    e = len(el)
    if x.ndim < e + 1 or tuple(x.shape[x.ndim - e :]) != el:
        raise ValueError(f"{name} must be a set of shape (*, K, {_fmt(el)}), got {tuple(x.shape)}")
    k = int(x.shape[x.ndim - e - 1])
    if k == 0:
        raise ValueError(f"{name} is an empty set (K = 0); {simulator.name} takes sets of {lo} to {hi} elements")
    if not lo <= k <= hi:
        raise ValueError(f"{name} holds sets of {k} elements; {simulator.name} takes sets of {lo} to {hi}")
    return (k, *el)
