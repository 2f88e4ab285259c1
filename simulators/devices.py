"""Device names, checked once: ``check_device("cuda:1")`` is a ``torch.device`` that exists here, or a one-line
``ValueError`` saying what is wrong (an unknown name, or hardware this machine or this torch build lacks)."""

from __future__ import annotations

import torch

KINDS = ("cpu", "cuda", "mps", "xpu")


def check_device(device: str | torch.device, *, available: bool = True) -> torch.device:
    """The ``torch.device`` named by ``device``.

    Arguments:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``, ``"xpu"`` or a ``torch.device``.
        available: also check that this machine has it (off for names recorded in saved settings, which are checked
            when something runs there).

    Raises:
        ValueError: not a device name zoo can compute on, or (``available``) one this machine does not have.
    """
    if isinstance(device, torch.device):
        d = device
    else:
        if not isinstance(device, str):
            raise ValueError(f"device must be a name such as 'cpu', 'cuda' or 'cuda:1', got {device!r}")
        try:
            d = torch.device(device)
        except (RuntimeError, ValueError):
            d = None
        if d is None or d.type not in KINDS:
            raise ValueError(f"device {device!r} is not one of {', '.join(KINDS)} (with an index, e.g. 'cuda:1')")
    if not available or d.type == "cpu":
        return d
    backend = getattr(torch, d.type, None)
    if d.type == "mps":
        ok, count = torch.backends.mps.is_available(), 1
    else:
        ok = backend is not None and backend.is_available()
        count = backend.device_count() if ok else 0
    if not ok:
        raise ValueError(f"device {str(d)!r} is not available on this machine (torch {torch.__version__}); use 'cpu'")
    if d.index is not None and d.index >= count:
        raise ValueError(f"device {str(d)!r} does not exist: this machine has {count} {d.type} device(s)")
    return d
