"""Options of methods: one reader that turns a dict (``--option key=value``, a saved ``estimator.json``) into a method's
frozen options dataclass, with nested settings, checked types and one-line errors.

A method's options are a frozen dataclass; a trained method nests its training settings
(``train: zoo.training.TrainConfig``) and may nest others (the inverse INN's ``loss``). Keys may name a nested field
with a dot (``train.lr``), or, where the name is unambiguous, plainly (``lr``, ``steps``: the names options had
before they were nested, so recipes and saved estimators keep working).
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping
from typing import Any

_SIMPLE = {"int": int, "float": float, "str": str, "bool": bool, "None": type(None)}
_WORDS = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false", "None": "none"}


class UnknownOptionError(ValueError):
    """An option name the options class does not have; the message lists the valid ones."""


def build_options(cls: type, options: Any = None, *, owner: str) -> Any:
    """Turn ``None``, a dict or an instance into the options dataclass ``cls``.

    Arguments:
        cls: a frozen dataclass whose defaults work.
        options: ``None`` (the defaults), an instance of ``cls``, or a mapping of field names to values. Lists become
            tuples (JSON has no tuples); ``None`` for a field typed plain ``str`` becomes ``"none"`` (the command line
            reads ``--option summary=none`` as ``None``).
        owner: what the options belong to, for messages (e.g. ``"method 'cinn'"``).

    Raises:
        UnknownOptionError: an unknown key (the message lists the valid ones).
        ValueError: a value of the wrong type or out of range (one line, from the dataclass's own checks).
    """
    if options is None:
        return cls()
    if isinstance(options, cls):
        return options
    if not isinstance(options, Mapping):
        raise ValueError(f"options for {owner} must be a {cls.__name__} or a dict, got {options!r}")
    return _build(cls, dict(options), owner, prefix="")


def _build(cls: type, options: dict[str, Any], owner: str, *, prefix: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    nested = {name: hints[name] for name in fields if dataclasses.is_dataclass(hints[name])}
    kw: dict[str, Any] = {}
    sub: dict[str, dict[str, Any]] = {name: {} for name in nested}
    for key, value in options.items():
        head, _, rest = str(key).partition(".")
        if rest and head in nested:
            sub[head][rest] = value
        elif key in nested and isinstance(value, Mapping):
            sub[key].update(value)
        elif key in fields and key not in nested:
            kw[key] = value
        else:
            owners = [n for n, t in nested.items() if key in {f.name for f in dataclasses.fields(t)}]
            if len(owners) != 1:
                raise UnknownOptionError(
                    f"unknown option {prefix}{key!r} for {owner}; valid options: {_listing(cls, prefix)}"
                )
            sub[owners[0]][key] = value
    for key, value in kw.items():
        kw[key] = _value(f"{prefix}{key}", value, str(fields[key].type))
    defaults = cls()
    for name, values in sub.items():
        if values:
            current = dataclasses.asdict(getattr(defaults, name))
            kw[name] = _build(nested[name], {**current, **values}, owner, prefix=f"{prefix}{name}.")
    try:
        return cls(**kw)
    except TypeError as e:  # a value the dataclass's own checks did not expect (e.g. comparing a str with an int)
        raise ValueError(f"bad option value for {owner}: {e}") from None


def _value(name: str, value: Any, annotation: str) -> Any:
    """Check ``value`` against a simple annotation (``int``, ``float | None``, ...); lists become tuples."""
    if isinstance(value, list):
        value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
    kinds = [k.strip() for k in annotation.split("|")]
    if value is None and "str" in kinds and "None" not in kinds:
        return "none"
    simple = [k for k in kinds if k in _SIMPLE]
    if len(simple) != len(kinds):  # tuples and other compound types: the dataclass checks them
        return value
    if value is None and "None" in kinds:
        return None
    if isinstance(value, bool):
        ok = "bool" in kinds
    elif isinstance(value, int):
        ok = ("int" in kinds or "float" in kinds) and abs(value) < 2**62
        if ok and "int" not in kinds:
            value = float(value)
    elif isinstance(value, float):
        ok = "float" in kinds
        if ok and not math.isfinite(value):
            raise ValueError(f"option {name} must be a finite number, got {value!r}")
    else:
        ok = isinstance(value, str) and "str" in kinds
    if not ok:
        want = " or ".join(_WORDS[k] for k in kinds)
        raise ValueError(f"option {name} must be {want}, got {value!r}")
    return value


def _listing(cls: type, prefix: str) -> str:
    defaults = cls()
    parts = []
    for f in dataclasses.fields(cls):
        value = getattr(defaults, f.name)
        if dataclasses.is_dataclass(value):
            parts.append(f"{prefix}{f.name}.* ({', '.join(g.name for g in dataclasses.fields(value))})")
        else:
            parts.append(f"{prefix}{f.name} (default {value!r})")
    return ", ".join(parts)


def options_dict(options: Any) -> dict[str, Any]:
    """Options as a plain (JSON-ready) dict: nested dataclasses become nested dicts."""
    if dataclasses.is_dataclass(options):
        return dataclasses.asdict(options)
    return dict(options or {})
