"""Safe writes, for every layer: all-or-nothing files and folders under unpredictable temporary names.

Everything zoo writes goes through here (tables, chunks, results, figures, estimators, models, checkpoints): a
temporary beside the target, made by ``mkstemp`` / ``mkdtemp`` (created exclusively, so a symbolic link planted at a
guessable name is never written through), given the mode a plain ``open`` would have under the user's umask, flushed
and renamed onto the target (a link at the target is replaced, never followed). Temporaries carry the writer's pid;
the next write of the same target removes those of processes that no longer run, so a killed run leaves nothing
behind once it runs again. It lives in ``simulators/``, the bottom layer, so that simulation tables use it too.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from pathlib import Path


def follow_umask(path: str | os.PathLike, *, directory: bool = False) -> None:
    """Give a file made by ``mkstemp`` (mode 0600) or a folder made by ``mkdtemp`` (0700) the mode a plain ``open`` /
    ``mkdir`` would have under the user's umask (0666 / 0777 minus it), so that shared folders can read results."""
    umask = os.umask(0o022)
    os.umask(umask)
    os.chmod(path, (0o777 if directory else 0o666) & ~umask)


def temporary(target: str | os.PathLike, *, suffix: str = ".partial") -> tuple[int, Path]:
    """A fresh temporary file beside ``target``, ``(fd, path)`` from ``mkstemp``, named
    ``.<target name>.<pid>.<random><suffix>`` (unpredictable, created exclusively). Temporaries of the same target
    left by processes that no longer run (a killed run) are removed first; a live process's are kept."""
    target = _clear_stale(Path(target), suffix)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=suffix, dir=target.parent)
    return fd, Path(tmp)


def temporary_dir(target: str | os.PathLike, *, suffix: str = ".partial") -> Path:
    """A fresh temporary folder beside ``target`` (``mkdtemp``), named and cleaned up as :func:`temporary`."""
    target = _clear_stale(Path(target), suffix)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=suffix, dir=target.parent))


def _clear_stale(target: Path, suffix: str) -> Path:
    for p in target.parent.glob(f".{glob.escape(target.name)}.*{glob.escape(suffix)}"):
        pid = p.name[len(target.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
    return target


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
    old = temporary_dir(target, suffix=".old")
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


def check_folder(path: str | os.PathLike, what: str = "folder", *, link_ok: bool = True) -> Path:
    """Check, before any work, that ``path`` is or can become a folder: it is one, or its first existing ancestor
    is. Returns that ancestor.

    Arguments:
        link_ok: accept ``path`` itself being a symbolic link (off for folders at names zoo chooses, such as
            ``OUT.ckpt``, where a planted link would make zoo write wherever it points).

    Raises:
        ValueError: ``path`` or an ancestor is a file, or (``link_ok=False``) ``path`` is a link (one line).
    """
    path = Path(path)
    if not link_ok and path.is_symlink():
        raise ValueError(
            f"{what} {path} is a symbolic link (to {os.readlink(path)}); zoo does not write through links at the "
            "names it chooses: remove it, or name the real folder"
        )
    first = path
    while not os.path.lexists(first) and first != first.parent:
        first = first.parent
    if not first.is_dir():
        raise ValueError(f"{what} {path}: {first} is a file, not a folder")
    return first
