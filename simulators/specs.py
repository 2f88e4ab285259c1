"""Simulators named on the command line, and how an estimator directory records how to rebuild its simulator.

A simulator spec is one of:

- a registered name (``arm``), including simulators an installed package registers through the entry-point group
  ``zoo.simulators`` (``[project.entry-points."zoo.simulators"] mysim = "mypkg.sims:MySim"``);
- ``package.module:factory`` — imports the module (your code, named by you) and calls ``factory(**options)``;
- ``path/to/file.py:factory`` — the same for a file that is not on the import path.

The factory returns a simulator object, or anything :func:`simulators.user.as_simulator` adapts. Every simulator
built here carries a :func:`record` of how it was built (kind, name or module / file, factory, options and, for a
file, its SHA-256), which estimator directories save. :func:`rebuild` turns a record back into a simulator in a fresh
process. Records that name code (a module or a file) are only imported with ``trust_code=True``: an estimator
directory from someone else must not run code by being loaded (docs/security.md).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

ENTRY_POINT_GROUP = "zoo.simulators"
_MODULE_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class SimulatorUnavailable(ValueError):
    """The simulator of an estimator cannot be rebuilt here; the message says why and what to pass."""


def is_code_spec(spec: str) -> bool:
    """Whether ``spec`` names code (``module:factory`` or ``file.py:factory``) rather than a registered name."""
    return isinstance(spec, str) and ":" in spec


def plugins() -> dict[str, Any]:
    """The entry points of the group ``zoo.simulators`` (name -> entry point), not yet loaded."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def build(spec: str, **options: Any) -> Any:
    """Build the simulator of a code spec (``module:factory`` or ``path.py:factory``) with its record attached.

    Raises:
        ValueError: one line: no such module / file / factory, or the factory's result is not a simulator.
    """
    from simulators.user import as_simulator

    target, _, factory_name = spec.rpartition(":")
    record: dict[str, Any] = {"kind": "module", "module": target, "factory": factory_name}
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target).expanduser().resolve()
        if not path.is_file():
            raise ValueError(f"--simulator {spec!r}: no file {path}; give path/to/file.py:factory")
        module = _import_file(path)
        record = {"kind": "file", "path": str(path), "factory": factory_name, "sha256": file_hash(path)}
    elif _MODULE_SPEC.match(spec):
        try:
            module = importlib.import_module(target)
        except ImportError as e:
            raise ValueError(f"--simulator {spec!r}: cannot import module {target!r} ({e})") from None
    else:
        raise ValueError(f"--simulator {spec!r} is neither a name, package.module:factory nor path/file.py:factory")
    factory = getattr(module, factory_name, None)
    if factory is None or not callable(factory):
        raise ValueError(f"--simulator {spec!r}: {target} has no callable {factory_name!r}")
    try:
        made = factory(**options)
    except Exception as e:  # the user's code: say where it failed in one line; running it in Python shows the trace
        why = str(e).splitlines()[0] if str(e).strip() else ""
        raise ValueError(
            f"--simulator {spec!r}: {factory_name}({_fmt(options)}) raised {type(e).__name__}"
            + (f": {why}" if why else "")
        ) from None
    try:
        sim = as_simulator(made)
    except (TypeError, ValueError) as e:
        raise ValueError(f"--simulator {spec!r}: {factory_name}({_fmt(options)}) returned no simulator: {e}") from None
    return attach(sim, {**record, "options": dict(options)})


def attach(sim: Any, record: dict[str, Any]) -> Any:
    """Attach how ``sim`` was built (its :func:`record`); returns ``sim``."""
    try:
        sim.zoo_record = record
    except AttributeError:  # a frozen or slotted object: adapt it, which takes attributes
        from simulators.user import _Adapted

        sim = _Adapted(sim)
        sim.zoo_record = record
    return sim


def record(sim: Any) -> dict[str, Any]:
    """How ``sim`` can be rebuilt: its attached record, or ``{"kind": "python"}`` for an object built in Python."""
    rec = getattr(sim, "zoo_record", None)
    if rec is not None:
        return dict(rec)
    return {"kind": "python", "name": getattr(sim, "name", "simulator")}


def rebuild(rec: dict[str, Any], options: dict[str, Any], *, trust_code: bool = False) -> Any:
    """The simulator a :func:`record` describes.

    Raises:
        SimulatorUnavailable: one line, when it cannot (or may not, without ``trust_code``) be rebuilt.
    """
    import simulators

    kind = rec.get("kind", "registry")
    if kind in ("registry", "entry_point"):
        return simulators.get(rec.get("name"), **options)
    if kind == "table":
        raise SimulatorUnavailable(
            "trained from a table without a simulator; pass --simulator (simulator=) to re-simulate or simulate cases"
        )
    if kind == "python":
        raise SimulatorUnavailable(
            f"simulator {rec.get('name')!r} was built in Python and cannot be rebuilt from the estimator directory; "
            "pass it: inference.load(DIR, simulator=sim), or --simulator package.module:factory"
        )
    where = rec.get("path") if kind == "file" else rec.get("module")
    spec = f"{where}:{rec.get('factory')}"
    if not trust_code:
        raise SimulatorUnavailable(
            f"simulator {spec} is code named by the estimator directory; it is imported only with --trust-code "
            f"(trust_code=True), or pass --simulator {spec} yourself"
        )
    if kind == "file":
        path = Path(str(where))
        if not path.is_file():
            raise SimulatorUnavailable(f"simulator file {path} is gone; pass --simulator path/file.py:factory")
        if file_hash(path) != rec.get("sha256"):
            raise SimulatorUnavailable(
                f"simulator file {path} changed since the estimator was trained (SHA-256 differs); pass --simulator "
                f"{spec} to use it anyway"
            )
    try:
        return build(spec, **options)
    except ValueError as e:
        raise SimulatorUnavailable(str(e)) from None


def file_hash(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _import_file(path: Path) -> Any:
    name = f"zoo_user_simulator_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[name]
        raise ValueError(f"importing {path} failed: {type(e).__name__}: {e}") from None
    return module


def _fmt(options: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in options.items())


class DetachedSimulator:
    """A simulator an estimator directory describes but that cannot be rebuilt here: its names and shapes only.

    Sampling a posterior needs no more; what needs the simulator itself (its prior, ``simulate``: re-simulation,
    test cases, misspecification on new simulations) raises :class:`SimulatorUnavailable` with the reason.

    Arguments:
        info: the ``simulator`` entry of ``estimator.json`` (name, options, param_names, obs_shape, set shape).
        reason: why the simulator is not available (one line, with what to pass to get it).
    """

    available = False

    def __init__(self, info: dict[str, Any], reason: str) -> None:
        self.name, self.options = str(info["name"]), dict(info.get("options") or {})
        self.param_names = tuple(info["param_names"])
        self.obs_shape = tuple(info["obs_shape"])
        if info.get("n_obs") is not None:
            self.n_obs, self.element_shape = tuple(info["n_obs"]), tuple(info["element_shape"])
        self.zoo_record, self.reason = info.get("record"), reason

    @property
    def prior(self) -> Any:
        raise SimulatorUnavailable(self.reason)

    def simulate(self, theta: Any, *, generator: Any = None, **kw: Any) -> Any:
        raise SimulatorUnavailable(self.reason)


def describe(sim: Any) -> dict[str, Any]:
    """What an estimator directory records of its simulator: name, options, how to rebuild it, names and shapes."""
    info: dict[str, Any] = {
        "name": sim.name,
        "options": dict(getattr(sim, "options", {}) or {}),
        "record": record(sim),
        "param_names": list(sim.param_names),
        "obs_shape": list(sim.obs_shape),
    }
    if hasattr(sim, "n_obs") and hasattr(sim, "element_shape"):
        info["n_obs"], info["element_shape"] = list(sim.n_obs), list(sim.element_shape)
    return info
