"""Bounded loading: a model's config is checked against its weights before anything is allocated or built.

A config names sizes (blocks, widths, dimensions); a crafted one can ask for 200,000 blocks or a 2e9-wide layer and
make a loader build for minutes or allocate terabytes before the weights are even compared. Here, in order, each step
cheap and each failure a one-line ``ValueError`` naming the file:

1. :func:`header_shapes` reads only the safetensors header (its length bounded by the file size) and checks every
   entry's shape and byte range against the file;
2. :func:`check_sizes`: no whole number in the config may exceed what the weights could hold — the number of
   tensors (a count of blocks or layers owns at least one tensor each) or the largest tensor dimension (a width
   appears as a dimension) — so building is bounded by the file's size;
3. :func:`build_checked` builds the module on the ``meta`` device (no memory) and compares its state-dict names and
   shapes with the header; only then is it built for real, and the weights loaded strictly.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from simulators.files import parse_json

SMALLEST_LIMIT = 64  # sizes up to this always pass (tiny models have few tensors and small dimensions)
NOT_SIZES = frozenset({"seed"})  # whole numbers in configs that size nothing
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def header_shapes(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """The tensor names and shapes of a safetensors file, from its header alone, each checked against the file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a safetensors file, or a header whose tensors do not fit the file (truncated or crafted).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weight file {path} does not exist")
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 0 < n <= size - 8:
            raise ValueError(f"{path} is not a safetensors file (empty, truncated or another format)")
        header = parse_json(f.read(n).decode("utf-8", errors="replace"), str(path))
    if not isinstance(header, dict):
        raise ValueError(f"{path} is not a safetensors file (its header is not a table of tensors)")
    data = size - 8 - n
    shapes = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        ok = isinstance(entry, dict) and isinstance(entry.get("shape"), list) and entry.get("dtype") in _DTYPE_BYTES
        shape = entry.get("shape") if ok else None
        ok = ok and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
        offsets = entry.get("data_offsets") if ok else None
        ok = ok and isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)
        if not ok or not (0 <= offsets[0] <= offsets[1] <= data):
            raise ValueError(f"{path}: tensor {name!r} has a malformed header entry or lies outside the file")
        if offsets[1] - offsets[0] != math.prod(shape) * _DTYPE_BYTES[entry["dtype"]]:
            raise ValueError(f"{path}: tensor {name!r} of shape {shape} does not match its byte range")
        shapes[name] = tuple(shape)
    return shapes


def check_sizes(config: Any, shapes: dict[str, tuple[int, ...]], where: str) -> None:
    """Refuse a config with a whole number larger than the weights could hold (see the module docstring)."""
    largest = max((d for s in shapes.values() for d in s), default=0)
    limit = max(len(shapes), largest, SMALLEST_LIMIT)
    for key, value in _whole_numbers(config, ""):
        if value > limit:
            raise ValueError(
                f"{where}: {key} = {value} is larger than anything its weights hold ({len(shapes)} tensors, largest "
                f"dimension {largest}); the config is corrupt or crafted"
            )


def build_checked(
    make: Callable[[], torch.nn.Module], shapes: dict[str, tuple[int, ...]], where: str, *, prefix: str = ""
) -> torch.nn.Module:
    """``make()``, after a build on the ``meta`` device showed that its state dict has exactly the names and shapes
    of ``shapes`` (those under ``prefix``). Modules that compute with their values while being built (not possible
    on ``meta``) skip the probe; :func:`check_sizes` has bounded them."""
    try:
        with torch.device("meta"):
            probe = make()
    except (RuntimeError, NotImplementedError):  # e.g. .item() of a buffer during construction
        probe = None
    if probe is not None:
        want = {prefix + k: tuple(v.shape) for k, v in probe.state_dict().items()}
        have = {k: v for k, v in shapes.items() if k.startswith(prefix)}
        missing, unexpected = sorted(set(want) - set(have)), sorted(set(have) - set(want))
        wrong = sorted(k for k in set(want) & set(have) if want[k] != have[k])
        if missing or unexpected or wrong:
            what = (
                f"missing {missing[:2]}"
                if missing
                else f"unexpected {unexpected[:2]}"
                if unexpected
                else (f"{wrong[0]} is {list(have[wrong[0]])}, the config needs {list(want[wrong[0]])}")
            )
            raise ValueError(f"{where}: the weights do not match the config ({what}); the files are corrupt or crafted")
    return make()


def _whole_numbers(value: Any, key: str) -> Iterator[tuple[str, int]]:
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        yield key or "value", value
    elif isinstance(value, float) and value.is_integer() and abs(value) > SMALLEST_LIMIT:
        yield key or "value", int(value)  # 2e9 written as a float
    elif isinstance(value, dict):
        for k, v in value.items():
            if k in NOT_SIZES:
                continue
            yield from _whole_numbers(v, f"{key}.{k}" if key else str(k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _whole_numbers(v, f"{key}[{i}]")


__all__ = ["build_checked", "check_sizes", "header_shapes"]
