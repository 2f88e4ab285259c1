"""Shared look of zoo's figures, and saving them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from simulators.writes import follow_umask, temporary

POSTERIOR_COLOR = "tab:blue"
PRIOR_COLOR = "0.6"
TRUTH_COLOR = "tab:red"


def save_figures(figs: dict[str, Figure], directory: Any, *, fmt: str = "png", dpi: int = 120) -> list[str]:
    """Save figures as ``directory/<name>.<fmt>``, each written to a fresh temporary file there, then renamed.

    The temporary file is made by ``mkstemp`` (an unpredictable name, created exclusively), so a planted symlink
    is never written through. Returns the paths.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figs.items():
        path = d / f"{name}.{fmt}"
        fd, tmp = temporary(path, suffix=f".partial.{fmt}")
        try:
            with os.fdopen(fd, "wb") as f:
                fig.savefig(f, dpi=dpi, format=fmt)
            follow_umask(tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        paths.append(str(path))
    return paths
