"""A user's own simulator: a plain function and a prior (:func:`from_function`), or any object (:func:`as_simulator`).

zoo's simulator interface is small (``name``, ``param_names``, ``prior``, a batched ``simulate(theta, *,
generator)``; see :mod:`simulators.protocol`). A user's model rarely has exactly that shape, so:

- :func:`from_function` wraps a function of a batch of parameters (``vectorized=True``) or of one parameter vector
  at a time (``vectorized=False``: a wrapper around an external program, say), taking and returning torch tensors or
  NumPy arrays. Randomness: the function gets ``generator=`` (a ``torch.Generator``) if it accepts one, ``rng=`` (a
  ``numpy.random.Generator`` seeded from it) if it accepts that; otherwise it runs with torch's global generator
  seeded from the caller's inside a fork of the global state, so results are reproducible either way.
- :func:`as_simulator` checks an object against the interface and adapts what is missing (a ``simulate`` without
  ``generator=``, no ``obs_shape``), with a one-line error naming what is wrong.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.distributions import Distribution

from simulators.priors import as_prior, check_support
from simulators.protocol import check_theta
from simulators.sampling import sample_prior

ARRAYS = ("auto", "torch", "numpy")


class FunctionSimulator:
    """A simulator made of a function and a prior (see :func:`from_function`)."""

    def __init__(
        self,
        fn: Callable[..., Any],
        prior: Distribution | Sequence[Distribution],
        *,
        param_names: Sequence[str] | None = None,
        name: str | None = None,
        vectorized: bool = True,
        obs_shape: Sequence[int] | None = None,
        array: str = "auto",
    ) -> None:
        if not callable(fn):
            raise ValueError(f"the simulator must be a callable function, got {type(fn).__name__}")
        if array not in ARRAYS:
            raise ValueError(f"array must be one of {', '.join(ARRAYS)}, got {array!r}")
        self.fn, self.vectorized, self.array = fn, bool(vectorized), array
        self.prior = as_prior(prior)
        d = int(self.prior.event_shape[0])
        self.param_names = tuple(param_names) if param_names is not None else tuple(f"theta{i}" for i in range(d))
        if len(self.param_names) != d:
            raise ValueError(f"{len(self.param_names)} param_names for a prior over {d} parameters")
        self.name = name or getattr(fn, "__name__", "simulator")
        self.options: dict[str, Any] = {}
        params = inspect.signature(fn).parameters
        kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        self._generator, self._rng = kw or "generator" in params, "rng" in params
        probe = self._probe()
        self.obs_shape = tuple(obs_shape) if obs_shape is not None else probe
        if tuple(self.obs_shape) != probe:
            raise ValueError(f"obs_shape {tuple(self.obs_shape)} does not match the function's output shape {probe}")

    def _probe(self) -> tuple[int, ...]:
        """One call on a prior draw: decides torch or NumPy input (``array="auto"``) and finds the output shape."""
        g = torch.Generator().manual_seed(0)
        theta = sample_prior(self.prior, 2 if self.vectorized else 1, generator=g)
        if self.array == "auto" and self._rng and not self._generator:  # a NumPy-style function (rng=)
            self.array = "numpy"
        if self.array == "auto":
            try:
                self.array = "torch"
                out = self._run(theta, g)
            except Exception:  # the function does not take tensors: try NumPy arrays
                self.array = "numpy"
                out = self._run(theta, g)
        else:
            out = self._run(theta, g)
        return tuple(out.shape[1:])

    def simulate(self, theta: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Simulate observations for parameters of shape (*, D); returns (*, *obs_shape) in theta's dtype."""
        theta = check_theta(theta, len(self.param_names))
        check_support(self.prior, theta)
        batch = theta.shape[:-1]
        out = self._run(theta.reshape(-1, theta.shape[-1]), generator)
        return out.reshape(*batch, *out.shape[1:])

    def _run(self, theta: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if self.vectorized:
            out = self._call(theta, generator)
        else:
            out = torch.stack([self._call(row, generator) for row in theta]) if len(theta) else theta[:, :0]
        if out.shape[0] != theta.shape[0] and self.vectorized:
            raise ValueError(
                f"simulator {self.name!r} returned {out.shape[0]} rows for {theta.shape[0]} parameter vectors; a "
                "vectorized simulator maps a batch (N, D) to (N, *obs_shape) (use vectorized=False for one at a time)"
            )
        if not torch.isfinite(out).all():
            row = int((~torch.isfinite(out)).reshape(len(out), -1).any(-1).nonzero()[0])
            raise ValueError(f"simulator {self.name!r} returned NaN or inf for parameters {theta[row].tolist()}")
        return out.to(theta.dtype)

    def _call(self, theta: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        arg = theta.detach().cpu().numpy() if self.array == "numpy" else theta
        kw: dict[str, Any] = {}
        if self._generator:
            kw["generator"] = generator
        if self._rng:
            seed = None if generator is None else int(torch.randint(0, 2**62, (), generator=generator))
            kw["rng"] = np.random.default_rng(seed)
        if self._generator or generator is None:
            out = self.fn(arg, **kw)
        else:  # no generator argument: its torch draws come from a seeded fork of the global state
            seed = int(torch.randint(0, 2**62, (), generator=generator))
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                out = self.fn(arg, **kw)
        try:
            return torch.as_tensor(np.asarray(out, dtype=np.float64) if not torch.is_tensor(out) else out)
        except (TypeError, ValueError) as e:
            raise ValueError(f"simulator {self.name!r} returned {type(out).__name__}, not numbers ({e})") from None


def from_function(
    fn: Callable[..., Any],
    prior: Distribution | Sequence[Distribution],
    *,
    param_names: Sequence[str] | None = None,
    name: str | None = None,
    vectorized: bool = True,
    obs_shape: Sequence[int] | None = None,
    array: str = "auto",
) -> FunctionSimulator:
    """A zoo simulator from a plain function and a prior.

    Arguments:
        fn: ``fn(theta) -> x``. Vectorized: theta (N, D) -> x (N, *obs_shape); else theta (D,) -> x (*obs_shape).
            Takes torch tensors or NumPy arrays (``array``), returns either. Optional keyword arguments
            ``generator`` (a ``torch.Generator``) and ``rng`` (a ``numpy.random.Generator``) receive the caller's
            randomness.
        prior: a torch / pyro distribution with event shape (D,) (constrained ones too: Gamma, Beta, LogNormal,
            Uniform boxes, MultivariateNormal), or a list of D univariate distributions.
        param_names: the D parameter names (default ``theta0, theta1, ...``).
        name: the simulator's name (default the function's).
        vectorized: whether ``fn`` takes a batch.
        obs_shape: the shape of one observation (default: found by one call of ``fn`` on a prior draw).
        array: ``"torch"``, ``"numpy"`` or ``"auto"`` (arrays for a function taking ``rng=`` and not
            ``generator=``; otherwise tensors, and arrays if tensors fail).

    Example:
        >>> import numpy as np, torch
        >>> from torch.distributions import Gamma, Normal
        >>> def model(theta, rng):  # NumPy, one batch at a time
        ...     return theta[:, :1] * np.sin(theta[:, 1:2]) + 0.1 * rng.normal(size=(len(theta), 3))
        >>> sim = from_function(model, [Gamma(2.0, 1.0), Normal(0.0, 1.0)], param_names=["a", "phase"])
        >>> sim.obs_shape, tuple(sim.simulate(torch.ones(5, 2)).shape)
        ((3,), (5, 3))
    """
    return FunctionSimulator(
        fn, prior, param_names=param_names, name=name, vectorized=vectorized, obs_shape=obs_shape, array=array
    )


class _Adapted:
    """An object close to the interface, adapted: ``simulate`` without ``generator=``, missing ``obs_shape``."""

    def __init__(self, obj: Any) -> None:
        self._obj = obj
        self.name, self.param_names, self.prior = obj.name, tuple(obj.param_names), as_prior(obj.prior)
        self.options = dict(getattr(obj, "options", {}) or {})
        params = inspect.signature(obj.simulate).parameters
        self._generator = "generator" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
        if hasattr(obj, "obs_shape"):
            self.obs_shape = tuple(obj.obs_shape)
        else:
            theta = sample_prior(self.prior, 1, generator=torch.Generator().manual_seed(0))
            self.obs_shape = tuple(self.simulate(theta).shape[1:])

    def __getattr__(self, name: str) -> Any:  # optional capabilities (log_likelihood, reference_posterior, ...)
        return getattr(self._obj, name)

    def simulate(self, theta: torch.Tensor, *, generator: torch.Generator | None = None, **kw: Any) -> torch.Tensor:
        if self._generator:
            return torch.as_tensor(self._obj.simulate(theta, generator=generator, **kw))
        if generator is None:
            return torch.as_tensor(self._obj.simulate(theta, **kw))
        seed = int(torch.randint(0, 2**62, (), generator=generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return torch.as_tensor(self._obj.simulate(theta, **kw))


def as_simulator(obj: Any, prior: Distribution | Sequence[Distribution] | None = None, **kwargs: Any) -> Any:
    """A zoo simulator from what a user has: a simulator object, an object close to one, or a function and a prior.

    Arguments:
        obj: an object with ``name``, ``param_names``, ``prior`` and ``simulate``; or a function (then ``prior`` is
            needed and ``kwargs`` go to :func:`from_function`).
        prior: the prior, for a function.

    Raises:
        ValueError: one line naming what is missing or wrong.
    """
    if not hasattr(obj, "simulate") and callable(obj):
        if prior is None:
            raise ValueError(
                "a simulator function needs a prior: simulators.from_function(fn, prior), prior a torch distribution"
            )
        return from_function(obj, prior, **kwargs)
    missing = [a for a in ("name", "param_names", "prior", "simulate") if not hasattr(obj, a)]
    if missing:
        raise ValueError(
            f"{type(obj).__name__} is not a simulator: it lacks {', '.join(missing)} (a simulator has name, "
            "param_names, prior and simulate(theta, *, generator=None); see docs/own-simulator.md)"
        )
    params = inspect.signature(obj.simulate).parameters
    takes_generator = "generator" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
    if takes_generator and hasattr(obj, "obs_shape") and len(getattr(obj.prior, "event_shape", ())) == 1:
        return obj
    return _Adapted(obj)
