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

import glob
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model

from zoo.architectures import build

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


def follow_umask(path: str | os.PathLike, *, directory: bool = False) -> None:
    """Give a file made by ``mkstemp`` (mode 0600) or a folder made by ``mkdtemp`` (0700) the mode a plain ``open`` /
    ``mkdir`` would have under the user's umask (0666 / 0777 minus it), so that shared folders can read results."""
    umask = os.umask(0o022)
    os.umask(umask)
    os.chmod(path, (0o777 if directory else 0o666) & ~umask)


def temporary(target: str | os.PathLike, *, directory: bool = False, suffix: str = ".partial") -> tuple[int, Path]:
    """A fresh temporary beside ``target``: ``(fd, path)`` of a ``mkstemp`` file, or ``(-1, path)`` of a ``mkdtemp``
    folder, named ``.<target name>.<pid>.<random><suffix>`` (unpredictable, created exclusively). Temporaries of the
    same target left by processes that no longer run (a killed run) are removed first; a live process's are kept."""
    target = Path(target)
    for p in target.parent.glob(f".{glob.escape(target.name)}.*{glob.escape(suffix)}"):
        pid = p.name[len(target.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
    prefix = f".{target.name}.{os.getpid()}."
    if directory:
        return -1, Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=target.parent))
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=target.parent)
    return fd, Path(tmp)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def replace_dir(tmp: str | os.PathLike, target: str | os.PathLike) -> None:
    """Move the finished folder ``tmp`` onto ``target``. A symbolic link or file at ``target`` is removed (the link
    itself: never followed out of the output folder); an existing folder is renamed aside (to a ``mkdtemp`` name),
    replaced and then deleted, or put back if the replacement fails."""
    tmp, target = Path(tmp), Path(target)
    if target.is_symlink() or target.is_file():
        target.unlink()
    if not target.is_dir():
        os.replace(tmp, target)
        return
    old = temporary(target, directory=True, suffix=".old")[1]
    os.replace(target, old)
    try:
        os.replace(tmp, target)
    except BaseException:
        os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` all or nothing: a ``mkstemp`` temporary beside it (no predictable name a planted
    symbolic link could sit at), flushed to disk, given the umask's mode and renamed onto ``path`` (a link at ``path``
    is replaced, never followed)."""
    path = Path(path)
    fd, tmp = temporary(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        follow_umask(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    tmp = temporary(path, directory=True)[1]
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
    try:
        meta = json.loads((path / "zoo.json").read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{str(path / 'zoo.json')!r} is not valid JSON: {e}") from e
    if meta.get("format") != FORMAT:
        raise ValueError(f"{str(path / 'zoo.json')!r} has format {meta.get('format')!r}, expected {FORMAT!r}")
    if int(meta.get("format_version", -1)) > FORMAT_VERSION:
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
    config = json.loads((path / "config.json").read_text())
    module = build(meta["architecture"], config)
    missing, unexpected = load_model(module, str(path / "model.safetensors"), strict=False)
    if missing or unexpected:
        raise ValueError(
            f"weights in {str(path)!r} do not match architecture {meta['architecture']!r}: "
            f"missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]}"
        )
    bad = next((k for k, v in module.state_dict().items() if v.is_floating_point() and bool(v.isnan().any())), None)
    if bad is not None:
        raise ValueError(f"weights in {str(path)!r} hold NaN in {bad!r}: the model is broken; retrain it")
    return module.to(device).eval(), meta
