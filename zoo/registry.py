"""The built-in models: names -> shipped directories under ``zoo/weights/`` with what they are.

Each shipped model is a zoo-format directory (``config.json`` + ``model.safetensors`` + ``zoo.json``) trained by
the recipe of the same name in :mod:`zoo.recipes`. A name is listed only when its weights are present.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from simulators import Registry

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
_MODELS: Registry[Path] = Registry("built-in model", listing="built-ins")
for _name in ("color-mnist-ddpm", "color-mnist-ood-ddpm", "color-mnist-ae", "digits-classifier", "color-mnist-ib-inn"):
    _MODELS.register(_name, WEIGHTS_DIR / _name)
BUILTIN: tuple[str, ...] = tuple(_MODELS.names())


def _present(name: str) -> bool:
    d = WEIGHTS_DIR / name
    return all((d / f).is_file() for f in ("config.json", "model.safetensors", "zoo.json"))


def names(role: str | None = None) -> list[str]:
    """Names of the built-in models whose weights are present (optionally only those of one role)."""
    out = [n for n in BUILTIN if _present(n)]
    if role is not None:
        out = [n for n in out if info(n)["role"] == role]
    return out


def is_builtin(name: str) -> bool:
    """Whether ``name`` is a built-in model (present or not)."""
    return name in _MODELS


def path(name: str) -> Path:
    """The directory of the built-in model ``name``.

    Raises:
        ValueError: not a built-in name.
        FileNotFoundError: a built-in whose weights are missing from this installation.
    """
    directory = _MODELS.get(name)
    if not _present(name):
        raise FileNotFoundError(
            f"the weights of built-in model {name!r} are missing from {WEIGHTS_DIR}; train them with "
            f"'zoo train <prior|subject> {name} --out DIR' and load DIR"
        )
    return directory


def info(name: str | Path) -> dict[str, Any]:
    """What a model is: name, role, kind, parameters, size on disk, what it was trained on, and how.

    Arguments:
        name: a built-in name, or a zoo-format directory (``zoo.save`` output: ``zoo.json`` beside the weights).

    Raises:
        ValueError: neither a built-in name nor a zoo-format directory.
    """
    if isinstance(name, Path) or not is_builtin(str(name)):
        d = Path(name)
        if not (d / "zoo.json").is_file():
            raise ValueError(f"{str(name)!r} is neither a built-in model nor a zoo model directory (no zoo.json)")
        name = str(name)
    else:
        d = path(name)
    meta = json.loads((d / "zoo.json").read_text())
    if "role" not in meta:
        raise ValueError(f"{str(d / 'zoo.json')!r} has no 'role'; it was not written by zoo.save")
    training = meta.get("training", {})
    return {
        "name": name,
        "role": meta["role"],
        "kind": meta.get("kind", ""),
        "parameters": meta.get("parameters") or _count_parameters(d),
        "size_bytes": sum(f.stat().st_size for f in d.iterdir() if f.is_file()),
        "trained_on": meta.get("trained_on", ""),
        "description": meta.get("description", ""),
        "metrics": meta.get("metrics", {}),
        "command": training.get("command", ""),
        "train_seconds": training.get("seconds"),
    }


def models(role: str | None = None) -> list[dict[str, Any]]:
    """:func:`info` of every present built-in model (optionally of one role)."""
    return [info(n) for n in names(role)]


def _count_parameters(d: Path) -> int | None:
    """Number of weights in ``d/model.safetensors`` from its header (nothing is loaded)."""
    f = d / "model.safetensors"
    if not f.is_file():
        return None
    with f.open("rb") as fh:
        size = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(size))
    return sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")
