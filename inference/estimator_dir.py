"""Estimator directories: the one versioned layout every method's estimator is saved in and read from.

::

    DIR/estimator.json       {"format": "zoo.estimator", "version": 1, "method": ..., "simulator": {name, options},
                              "options": {...}, "budget": ..., "config": {...method specific...}, "zoo_version": ...}
    DIR/weights.safetensors  named tensors (optional; never pickled)

A method's ``save`` calls :func:`save_estimator`; ``inference.load`` calls :func:`read_estimator` and hands the
parsed :class:`EstimatorFiles` to the method's ``load_fn``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

import zoo
from inference.options import options_dict
from simulators import Simulator, specs
from simulators.files import read_json
from simulators.writes import follow_umask, replace_dir, temporary_dir

FORMAT = "zoo.estimator"
FORMAT_VERSION = 1
CONFIG_FILE = "estimator.json"
WEIGHTS_FILE = "weights.safetensors"


@dataclass(frozen=True)
class EstimatorFiles:
    """The parsed contents of an estimator directory, handed to a method's ``load_fn``.

    Attributes:
        directory: the directory.
        method: the method name.
        simulator: the simulator rebuilt from its saved name and options.
        options: the method options, rebuilt as the method's dataclass.
        budget: the budget it was fitted with.
        config: the method-specific JSON config (network sizes, standardization statistics, ...).
        tensors: the named tensors of ``weights.safetensors`` (empty if the method saved none).
    """

    directory: Path
    method: str
    simulator: Simulator
    options: Any
    budget: int | None
    config: dict[str, Any]
    tensors: dict[str, torch.Tensor]


def save_estimator(
    directory: str | os.PathLike,
    estimator: Any,
    *,
    config: Mapping[str, Any] | None = None,
    tensors: Mapping[str, torch.Tensor] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write an estimator directory atomically (a temporary sibling directory, then a rename).

    Arguments:
        directory: target directory; must not exist unless ``overwrite``.
        estimator: the estimator; its ``method``, ``simulator`` (``name`` and ``options``), ``options`` (recorded
            as a nested dict) and ``budget`` go into ``estimator.json``.
        config: method-specific JSON-serializable settings needed to rebuild the estimator.
        tensors: named tensors (weights, statistics), saved as safetensors on CPU.
        overwrite: replace an existing directory.

    Returns:
        The directory path.

    Raises:
        FileExistsError: if ``directory`` exists, is not empty and ``overwrite`` is false.
    """
    target = Path(directory)
    taken = target.is_symlink() or target.exists() and (not target.is_dir() or any(target.iterdir()))
    if taken and not overwrite:  # with overwrite, a link or file there is replaced (replace_dir), never followed
        raise FileExistsError(f"{target} already exists; pass overwrite=True (--overwrite) to replace it")
    sim = estimator.simulator
    header = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "method": estimator.method,
        "simulator": specs.describe(sim),
        "options": options_dict(estimator.options),
        "budget": estimator.budget,
        "config": dict(config or {}),
        "zoo_version": zoo.__version__,
        "torch_version": str(torch.__version__),
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_dir(target)
    try:
        (tmp / CONFIG_FILE).write_text(json.dumps(header, indent=2, sort_keys=True))
        if tensors:
            save_file({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, str(tmp / WEIGHTS_FILE))
        follow_umask(tmp, directory=True)
        replace_dir(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def read_header(directory: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read and check an estimator directory written by :func:`save_estimator`: its header and its tensors.

    :func:`inference.methods.read_estimator` turns them into :class:`EstimatorFiles` (simulator and options rebuilt).

    Raises:
        FileNotFoundError: if the directory or its ``estimator.json`` is missing.
        ValueError: for a corrupt or foreign config, or an unsupported version.
    """
    d = Path(directory)
    cfg_path = d / CONFIG_FILE
    if not d.is_dir():
        raise FileNotFoundError(f"estimator directory {d} does not exist")
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path} is missing; expected an estimator directory written by Estimator.save")
    header = read_json(cfg_path)
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"{cfg_path} is not a zoo estimator config (expected format {FORMAT!r})")
    if header.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"{cfg_path} has estimator format version {header.get('version')!r}; this zoo reads version "
            f"{FORMAT_VERSION}"
        )
    if not isinstance(header.get("method"), str) or not isinstance(header.get("simulator"), dict):
        raise ValueError(f"{cfg_path} names no method or simulator; the estimator directory is corrupt")
    tensors: dict[str, torch.Tensor] = {}
    weights = d / WEIGHTS_FILE
    if weights.exists():
        try:
            tensors = load_file(str(weights))
        except Exception as e:  # safetensors raises its own error types for truncated / foreign files
            raise ValueError(f"{weights} could not be read ({type(e).__name__}); the file is corrupt") from e
    bad = next((k for k, v in tensors.items() if v.is_floating_point() and bool(v.isnan().any())), None)
    if bad is not None:
        raise ValueError(f"{weights} holds NaN in {bad!r}: the estimator is broken (a diverged training?); retrain it")
    return header, tensors
