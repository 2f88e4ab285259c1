"""Model files that carry code: TorchScript archives and ``torch.export`` programs, loaded only with consent.

Both formats hold their author's program, not just weights. A TorchScript archive's compiled methods run when it is
loaded (a scripted ``__setstate__`` runs inside ``torch.jit.load``) and whenever it is called, and TorchScript can
read and write files (``torch.from_file``); ``torch.export.load`` unpickles parts of the archive. zoo therefore reads
them only with ``trust_code=True`` (``--trust-code`` on the command line), like a ``package.module:factory`` it would
import. docs/security.md has the whole threat model.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch

CONSENT = (
    "pass trust_code=True (--trust-code on the command line) only if you trust where the file came from; "
    "otherwise ask for safetensors weights and the architecture (docs/security.md)"
)


def kind(path: Path) -> str | None:
    """``"torchscript"``, ``"export"`` (a ``torch.export`` program, ``.pt2``) or ``None`` (neither)."""
    if not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return None
    if any("serialized_exported_program" in n or n.endswith("models/model.json") for n in names):
        return "export"
    if any("/code/" in n for n in names):
        return "torchscript"
    return None


def refuse(path: Path, what: str, why: str) -> ValueError:
    """The one-line refusal of a code-carrying file loaded without consent."""
    return ValueError(f"refusing to load {what} {str(path)!r} without trust_code: {why}; {CONSENT}")


def load_module(path: Path, file_kind: str, *, trust_code: bool, device: str | torch.device) -> torch.nn.Module:
    """The module in a TorchScript or ``torch.export`` file, with ``trust_code`` (else a one-line refusal)."""
    if file_kind == "torchscript":
        if not trust_code:
            raise refuse(path, "TorchScript file", "TorchScript runs its author's compiled code when loaded and called")
        return torch.jit.load(str(path), map_location=device)
    if not trust_code:
        raise refuse(path, "torch.export program", "torch.export.load unpickles the archive and runs its program")
    try:
        program = torch.export.load(str(path))
    except Exception as e:  # noqa: BLE001 - any failure to deserialize is the file's fault, in one line
        raise ValueError(f"{str(path)!r} is not a readable torch.export program: {str(e).splitlines()[0][:160]}") from e
    try:
        # the module tree as it was exported: named submodules (so --layer hooks work) and a working eval()
        return torch.export.unflatten(program).to(device)
    except Exception:  # noqa: BLE001 - programs unflatten cannot rebuild still run as one graph
        return _Program(program.module().to(device))


class _Program(torch.nn.Module):
    """A ``torch.export`` program as a module zoo can put in eval mode (the exported graph refuses ``eval()``; it
    has no training behaviour to switch). The graph is held outside the module tree, so ``eval()`` / ``train()``
    do not reach it."""

    def __init__(self, graph: torch.nn.Module) -> None:
        super().__init__()
        object.__setattr__(self, "graph", graph)

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return self.graph(*args)
