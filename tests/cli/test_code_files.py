"""Crafted code-carrying model files run nothing without ``--trust-code``: real files, real ``zoo fiber`` processes,
and a marker file the payload writes when (and only when) it runs.

The TorchScript payload is a scripted ``__setstate__``, which ``torch.jit.load`` runs, writing the marker with
``torch.from_file(..., shared=True)``: the arbitrary-file-write of the issue. The ``.pt2`` is a real ``torch.export``
archive with a pickle added that writes the marker if anything unpickles it with the standard unpickler.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile

import torch

_TORCHSCRIPT = """
import sys, warnings
from typing import List
import torch

class Payload(torch.nn.Module):
    def forward(self, x):
        return x.flatten(1)[:, :4]

    @torch.jit.export
    def __getstate__(self) -> List[int]:
        return [1]

    @torch.jit.export
    def __setstate__(self, state: List[int]) -> None:
        t = torch.from_file("MARKER", shared=True, size=4, dtype=torch.uint8)
        t.fill_(65)
        self.training = bool(t[0] != 65)  # uses t, so that the JIT keeps the write

warnings.simplefilter("ignore")
torch.jit.save(torch.jit.script(Payload()), sys.argv[1])
"""


class _WritesMarker:
    """Unpickling this object writes the marker (what a pickle can do: call any function)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({self.marker!r}, 'w').write('ran')",))


def _fiber(subject: str, out, *trust: str) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-c",
        "from zoo_cli.main import main; main()",
        "fiber",
        "--subject",
        subject,
        "--input",
        "0",
        "-n",
        "1",
    ]
    cmd += ["--prior", "color-mnist-ddpm", "--steps", "1", "--reference-size", "10", "--out", str(out), *trust]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_crafted_torchscript_writes_nothing_without_trust_code(tmp_path):
    marker, path = tmp_path / "marker", tmp_path / "subject.pt"
    make = tmp_path / "make.py"
    make.write_text(_TORCHSCRIPT.replace("MARKER", str(marker)))  # TorchScript takes the path as a literal
    subprocess.run([sys.executable, str(make), str(path)], check=True, capture_output=True)
    assert not marker.exists()  # making the file runs no payload
    refused = _fiber(str(path), tmp_path / "out")
    assert refused.returncode == 2 and not marker.exists(), refused.stderr
    assert "refusing to load TorchScript file" in refused.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "out").exists()
    trusted = _fiber(str(path), tmp_path / "out2", "--trust-code")  # what --trust-code accepts: the code runs
    assert marker.read_bytes() == b"AAAA", trusted.stderr


def test_crafted_export_program_is_not_opened_without_trust_code(tmp_path):
    marker, path = tmp_path / "marker", tmp_path / "subject.pt2"

    class Net(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1)[:, :4]

    torch.export.save(torch.export.export(Net(), (torch.zeros(1, 3, 16, 16),)), str(path))
    import pickle

    with zipfile.ZipFile(path, "a") as z:  # a stowaway pickle beside the program
        z.writestr(f"{z.namelist()[0].split('/')[0]}/data/payload.pkl", pickle.dumps(_WritesMarker(str(marker))))
    refused = _fiber(str(path), tmp_path / "out")
    assert refused.returncode == 2 and not marker.exists(), refused.stderr
    assert "refusing to load torch.export program" in refused.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "out").exists()


def test_fiber_help_names_the_consent_code_files_need():
    from click.testing import CliRunner

    from zoo_cli.main import main

    text = " ".join(CliRunner().invoke(main, ["fiber", "--help"]).output.split())
    assert "TorchScript / torch.export file (--trust-code)" in text and "docs/security.md" in text
