"""A third-party CNN classifier (not zoo code), exported three ways — a ``torch.export`` program (.pt2), a TorchScript
file, and a ``package.module:factory`` with safetensors weights — runs ``zoo fiber --subject ... --layer embedding
--trust-code --input-range 0,1`` end to end where the format lets a layer be reached (TorchScript: a one-line error
that says how to export the layer instead), and each is refused without ``--trust-code``."""

from __future__ import annotations

import sys
import textwrap
import warnings

import pytest
import torch
from click.testing import CliRunner

from inference.results import read_fibers
from zoo_cli.main import main

CNN_SOURCE = textwrap.dedent(
    """
    import torch
    from torch import nn


    class ThirdPartyCNN(nn.Module):
        def __init__(self):
            super().__init__()
            conv = nn.Conv2d(3, 8, 3, padding=1)
            self.features = nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())
            self.embedding = nn.Linear(32, 16)
            self.head = nn.Linear(16, 10)

        def forward(self, x):
            return self.head(torch.relu(self.embedding(self.features(x))))


    def make():
        return ThirdPartyCNN()
    """
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The three files of one CNN (same weights): .pt2, TorchScript, and module + safetensors."""
    from safetensors.torch import save_file

    d = tmp_path_factory.mktemp("third")
    (d / "thirdparty_cnn.py").write_text(CNN_SOURCE)
    sys.path.insert(0, str(d))
    import thirdparty_cnn

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = thirdparty_cnn.make().eval()
    program = torch.export.export(model, (torch.rand(2, 3, 16, 16),), dynamic_shapes=({0: torch.export.Dim("b")},))
    torch.export.save(program, str(d / "cnn.pt2"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script is deprecated in favour of torch.export
        torch.jit.script(model).save(str(d / "cnn.ts"))
    save_file(model.state_dict(), str(d / "cnn.safetensors"))
    yield d
    sys.path.remove(str(d))


def fiber(subject: str, out, *extra: str):
    args = ["fiber", "--subject", subject, "--prior", "color-mnist-ddpm", "--input", "0", "-n", "1", "--steps", "2"]
    args += ["--reference-size", "20", "--input-range", "0,1", "--out", str(out), *extra]
    return CliRunner().invoke(main, args)


@pytest.mark.parametrize("form", ["pt2", "factory"])
def test_layer_fibers_of_an_exported_and_a_factory_subject(exported, tmp_path, form):
    subject, extra = (str(exported / "cnn.pt2"), []) if form == "pt2" else (
        "thirdparty_cnn:make", ["--weights", str(exported / "cnn.safetensors")])  # fmt: skip
    r = fiber(subject, tmp_path / "o", "--layer", "embedding", "--trust-code", *extra)
    assert r.exit_code == 0, r.output
    res = read_fibers(tmp_path / "o" / "fibers.nc")
    assert res.samples.shape == (1, 1, 1, 3, 16, 16) and res.fiber_loss.shape == (1, 1, 1)
    assert "embedding" in res.subject, res.subject


def test_the_layer_features_are_the_layer(exported):
    """--layer embedding gives the 16-d embedding for the .pt2 program and for the factory, and both agree."""
    import zoo

    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    a = zoo.load(exported / "cnn.pt2", role="subject", layer="embedding", trust_code=True)
    b = zoo.load("thirdparty_cnn:make", role="subject", layer="embedding", trust_code=True,
                 weights=exported / "cnn.safetensors")  # fmt: skip
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x))
    assert a(x).shape == (3, 16)


def test_torchscript_runs_but_refuses_a_layer_in_one_line(exported, tmp_path):
    ok = fiber(str(exported / "cnn.ts"), tmp_path / "ts", "--trust-code")
    assert ok.exit_code == 0, ok.output
    r = fiber(str(exported / "cnn.ts"), tmp_path / "ts2", "--layer", "embedding", "--trust-code")
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 2 and len(lines) == 1 and "torch.export" in lines[0], r.output
    assert not (tmp_path / "ts2").exists()


@pytest.mark.parametrize("form", ["pt2", "ts", "factory"])
def test_each_is_refused_without_trust_code(exported, tmp_path, form):
    subject = {"pt2": str(exported / "cnn.pt2"), "ts": str(exported / "cnn.ts"), "factory": "thirdparty_cnn:make"}
    extra = ["--weights", str(exported / "cnn.safetensors")] if form == "factory" else []
    r = fiber(subject[form], tmp_path / "o", *extra)
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 2 and len(lines) == 1 and "trust" in lines[0], r.output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("value", ["1,0", "0", "a,b", "nan,1", "0,inf"])
def test_bad_input_ranges_are_refused(exported, tmp_path, value):
    args = ["fiber", "--subject", str(exported / "cnn.pt2"), "--prior", "color-mnist-ddpm", "--input", "0"]
    r = CliRunner().invoke(main, [*args, "--input-range", value, "--trust-code", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "--input-range" in r.output


def test_a_range_that_contradicts_the_recorded_one_is_refused(tmp_path):
    r = fiber("digits-classifier", tmp_path / "o", "--input-range", "-1,1")
    assert r.exit_code == 2 and "contradicts" in r.output
