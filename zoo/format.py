"""zoo's own model directory format: ``config.json`` + ``model.safetensors`` + ``zoo.json``.

- ``config.json``: the constructor arguments of the network (for a diffusers UNet, its usual config);
- ``model.safetensors``: the weights (tensors only: loading them cannot run code);
- ``zoo.json``: what the model is — ``format`` ("zoo"), ``format_version``, ``role`` ("prior" / "subject"),
  ``architecture`` (a name from :mod:`zoo.architectures`), the ``input`` spec (shape, range, normalization),
  role details (``scheduler`` for diffusion priors, ``output`` / ``layer`` for subjects), a description and,
  for trained models, the ``training`` record (command, seed, settings, time).

Directories are written to a temporary sibling and renamed, so a reader never sees a half-written model.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model

from simulators.files import read_json
from simulators.writes import follow_umask, replace_dir, temporary_dir
from zoo.architectures import build
from zoo.bounds import build_checked, check_sizes, header_shapes

FORMAT = "zoo"
FORMAT_VERSION = 1
ROLES = ("prior", "subject")


def jsonable(v: Any) -> Any:
    """``v`` with tensors and tuples as lists and keys as strings, for JSON; non-finite float entries of a dict are
    dropped (JSON has no NaN / inf: a scheduler config that holds one falls back to its default when read back)."""
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items() if not (isinstance(x, float) and not math.isfinite(x))}
    if isinstance(v, list | tuple):
        return [jsonable(x) for x in v]
    if isinstance(v, torch.Tensor):
        return v.tolist()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def is_zoo_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a directory holding a ``zoo.json``."""
    return (Path(path) / "zoo.json").is_file()


def write_zoo_dir(
    path: str | os.PathLike,
    module: torch.nn.Module,
    *,
    config: dict[str, Any],
    meta: dict[str, Any],
    overwrite: bool = False,
) -> Path:
    """Write ``module`` with its constructor ``config`` and metadata ``meta`` (must name role and architecture).

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
        ValueError: ``meta`` lacks a valid role or architecture.
    """
    path = Path(path)
    if meta.get("role") not in ROLES:
        raise ValueError(f"zoo.json role must be one of {ROLES}, got {meta.get('role')!r}")
    if "architecture" not in meta:
        raise ValueError("zoo.json needs an 'architecture' entry")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{str(path)!r} exists; pass overwrite=True (--overwrite) to replace it")
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_dir(path)
    try:
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        save_model(module, str(tmp / "model.safetensors"))
        (tmp / "zoo.json").write_text(json.dumps(meta, indent=2) + "\n")
        follow_umask(tmp, directory=True)
        replace_dir(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return path


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """The checked ``zoo.json`` of a zoo-format directory."""
    path = Path(path)
    meta = read_json(path / "zoo.json")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ValueError(f"{str(path / 'zoo.json')!r} has format {got!r}, expected {FORMAT!r}")
    version = meta.get("format_version", -1)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(f"{str(path / 'zoo.json')!r} has format_version {version!r}; expected a whole number")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{str(path)!r} has zoo format version {meta.get('format_version')}, newer than this zoo "
            f"({FORMAT_VERSION}); upgrade zoo"
        )
    if meta.get("role") not in ROLES:
        raise ValueError(f"{str(path / 'zoo.json')!r} has role {meta.get('role')!r}, expected one of {ROLES}")
    return meta


def read_zoo_dir(path: str | os.PathLike, *, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict]:
    """Rebuild the module of a zoo-format directory and load its safetensors weights (strictly).

    Returns:
        the module (in eval mode, on ``device``) and the ``zoo.json`` metadata.
    """
    path = Path(path)
    meta = read_meta(path)
    for name in ("config.json", "model.safetensors"):
        if not (path / name).is_file():
            raise FileNotFoundError(
                f"{str(path)!r} is missing {name}; a zoo model directory has config.json, "
                "model.safetensors and zoo.json"
            )
    config = read_json(path / "config.json")
    if not isinstance(config, dict):
        raise ValueError(f"{path / 'config.json'} must hold a JSON object of constructor settings")
    weights = path / "model.safetensors"
    shapes = header_shapes(weights)  # bounded loading (zoo.bounds): sizes, then shapes on meta, then the build
    check_sizes(config, shapes, str(path / "config.json"))
    try:
        module = build_checked(lambda: build(meta["architecture"], config), shapes, str(path))
        missing, unexpected = load_model(module, str(weights), strict=False)
    except (TypeError, RuntimeError) as e:  # constructor settings it does not take; a tensor it cannot read
        raise ValueError(f"{path} does not hold a valid {meta['architecture']!r} ({one_line(e)})") from None
    if missing or unexpected:
        raise ValueError(
            f"weights in {str(path)!r} do not match architecture {meta['architecture']!r}: "
            f"missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]}"
        )
    bad = next((k for k, v in module.state_dict().items() if v.is_floating_point() and bool(v.isnan().any())), None)
    if bad is not None:
        raise ValueError(f"weights in {str(path)!r} hold NaN in {bad!r}: the model is broken; retrain it")
    return module.to(device).eval(), meta


def one_line(e: BaseException) -> str:
    """The first line of an exception's message (its type's name if it has none)."""
    msg = str(e).strip()
    return msg.splitlines()[0][:200] if msg else type(e).__name__
