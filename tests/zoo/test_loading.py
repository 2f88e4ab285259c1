"""zoo.load / zoo.save: every format round-trips to identical outputs; pickles and bad inputs are refused.

Round trips compare outputs exactly (same weights, same code, same input: bitwise equal).
"""

from __future__ import annotations

import os
import pickle
import warnings

import pytest
import torch
from diffusers import DDIMScheduler, DDPMPipeline, DDPMScheduler, FlowMatchEulerDiscreteScheduler
from safetensors.torch import save_file

import zoo
from zoo import DiffusionPrior, FlowPrior, Subject
from zoo.architectures import DigitsCNN, build, realnvp


def _x(shape=(2, 3, 8, 8)):
    return torch.randn(shape, generator=torch.Generator().manual_seed(0))


def _same(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, atol=0, rtol=0)


@pytest.mark.parametrize("cls", [DDPMScheduler, DDIMScheduler, FlowMatchEulerDiscreteScheduler])
def test_diffusion_prior_zoo_round_trip(tmp_path, cls, tiny_unet):
    prior = DiffusionPrior(tiny_unet(), cls(), normalization={"mean": 0.5, "std": 0.5})
    zoo.save(prior, tmp_path / "p")
    back = zoo.load(tmp_path / "p", role="prior")
    assert isinstance(back, DiffusionPrior) and back.scheduler_class == cls.__name__
    x, ts = _x(), prior.timesteps(4)
    _same(back.x0_estimate(x, ts[1]), prior.x0_estimate(x, ts[1]))
    _same(back.timesteps(4), ts)
    assert (back.norm_mean, back.norm_std) == (0.5, 0.5)
    with pytest.raises(FileExistsError, match="overwrite"):
        zoo.save(prior, tmp_path / "p")
    zoo.save(back, tmp_path / "p", overwrite=True)


def test_flow_prior_and_subject_zoo_round_trip(tmp_path):
    cfg = {"dim": 2, "num_layers": 2, "hidden": 8}
    flow = FlowPrior(realnvp(**cfg), meta={"architecture": "zoo.realnvp", "config": cfg})
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.1)
    zoo.save(flow, tmp_path / "f")
    back = zoo.load(tmp_path / "f", role="prior")
    x = torch.randn(4, 2)
    _same(back.log_prob(x), flow.log_prob(x))

    cfg = {"width": 4, "embed_dim": 8}
    subj = Subject(
        build("zoo.digits-cnn", cfg), layer="embedding", meta={"architecture": "zoo.digits-cnn", "config": cfg}
    )
    zoo.save(subj, tmp_path / "s")
    back = zoo.load(tmp_path / "s", role="subject")
    assert back.layer == "embedding"
    x = torch.rand(3, 3, 16, 16)
    _same(back(x), subj(x))


def test_models_without_a_zoo_architecture_cannot_be_saved(tmp_path):
    with pytest.raises(ValueError, match="not built from a zoo architecture"):
        zoo.save(Subject(torch.nn.Linear(2, 2)), tmp_path / "x")


@pytest.mark.parametrize("layout", ["model_dir", "pipeline"])
def test_diffusers_save_pretrained_directory_loads_as_prior(tmp_path, layout, tiny_unet):
    unet, sched = tiny_unet(), DDIMScheduler(prediction_type="v_prediction")
    if layout == "model_dir":
        unet.save_pretrained(tmp_path)
        sched.save_pretrained(tmp_path)
    else:
        DDPMPipeline(unet=unet, scheduler=sched).save_pretrained(tmp_path)
    prior = zoo.load(tmp_path, role="prior")
    assert isinstance(prior, DiffusionPrior)
    assert prior.scheduler_class == "DDIMScheduler" and prior.parametrization == "v_prediction"
    x = _x()
    _same(prior.model_output(x, 500), unet(x, 500).sample)
    assert (prior.norm_mean, prior.norm_std) == (0.5, 0.5)  # diffusers images live in [-1, 1]


def test_diffusers_directory_without_scheduler_needs_one(tmp_path, tiny_unet):
    tiny_unet().save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="no scheduler_config.json"):
        zoo.load(tmp_path, role="prior")
    prior = zoo.load(tmp_path, role="prior", scheduler="FlowMatchEulerDiscreteScheduler")
    assert prior.parametrization == "flow"
    with pytest.raises(ValueError, match="is a prior"):
        zoo.load(tmp_path, role="subject", scheduler="DDPMScheduler")


class _Payload:
    """Unpickling this object creates a directory: the canary for code execution."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (os.mkdir, (self.target,))


def _malicious(tmp_path, name: str, zipped: bool):
    canary = tmp_path / "pwned"
    path = tmp_path / name
    if zipped:
        torch.save({"weight": _Payload(str(canary))}, path)  # torch.save's zip format around a pickle
    else:
        path.write_bytes(pickle.dumps(_Payload(str(canary))))
    return path, canary


@pytest.mark.parametrize("zipped", [False, True])
def test_malicious_pickle_is_refused_without_running_it(tmp_path, zipped):
    path, canary = _malicious(tmp_path, "model.pt", zipped)
    with pytest.raises(ValueError, match="refusing to load"):
        zoo.load(path, role="subject")
    assert not canary.exists()
    # the same file as the weights of an explicit factory: read with weights_only=True, which rejects it
    with pytest.raises(ValueError, match="refusing"):
        zoo.load("zoo.architectures:DigitsCNN", role="subject", weights=path, trust_code=True)
    assert not canary.exists()


def test_diffusers_directory_with_only_pickle_weights_is_refused(tmp_path, tiny_unet):
    tiny_unet().save_pretrained(tmp_path, safe_serialization=False)
    DDPMScheduler().save_pretrained(tmp_path)
    assert not list(tmp_path.glob("*.safetensors"))
    with pytest.raises(ValueError, match="only pickle weights"):
        zoo.load(tmp_path, role="prior")


def test_factory_with_safetensors_or_plain_state_dict(tmp_path):
    net = DigitsCNN()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.01)
    save_file(net.state_dict(), str(tmp_path / "w.safetensors"))
    torch.save(net.state_dict(), tmp_path / "w.pt")
    x = torch.rand(2, 3, 16, 16)
    for w in ("w.safetensors", "w.pt"):
        s = zoo.load(
            "zoo.architectures:DigitsCNN", role="subject", weights=tmp_path / w, output="probs", trust_code=True
        )
        _same(s(x), net(x).softmax(-1))
    with pytest.raises(ValueError, match="needs weights="):
        zoo.load("zoo.architectures:DigitsCNN", role="subject", trust_code=True)
    with pytest.raises(ValueError, match="do not fit"):
        zoo.load(
            "zoo.architectures:ColorMNISTAutoencoder",
            role="subject",
            weights=tmp_path / "w.safetensors",
            trust_code=True,
        )
    with pytest.raises(ValueError, match="cannot import"):
        zoo.load("zoo.nonexistent:thing", role="subject", weights=tmp_path / "w.safetensors", trust_code=True)


def test_torchscript_file_loads_as_subject_only_with_trust_code(tmp_path):
    net = DigitsCNN().eval()
    x = torch.rand(2, 3, 16, 16)
    with warnings.catch_warnings():  # torch.jit is deprecated in recent torch, still supported
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.trace(net, x), str(tmp_path / "net.ts"))
        with pytest.raises(ValueError, match="refusing to load TorchScript file .* without trust_code"):
            zoo.load(tmp_path / "net.ts", role="subject")
        s = zoo.load(tmp_path / "net.ts", role="subject", trust_code=True)
    torch.testing.assert_close(s(x), net(x), atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError, match="is a subject"):
        zoo.load(tmp_path / "net.ts", role="prior", trust_code=True)


_PAYLOAD = """
import sys, warnings
from typing import List
import torch

class Payload(torch.nn.Module):  # a scripted __setstate__ runs inside torch.jit.load
    def forward(self, x):
        return x

    @torch.jit.export
    def __getstate__(self) -> List[int]:
        return [1]

    @torch.jit.export
    def __setstate__(self, state: List[int]) -> None:
        print("PAYLOAD RAN")
        self.training = False

warnings.simplefilter("ignore")
torch.jit.save(torch.jit.script(Payload()), sys.argv[1])
"""


def test_crafted_torchscript_runs_nothing_without_trust_code(tmp_path):
    """A real crafted file and real processes: loading it without consent prints nothing of the payload."""
    import subprocess
    import sys

    script, path = tmp_path / "make.py", tmp_path / "subject.pt"
    script.write_text(_PAYLOAD)
    subprocess.run([sys.executable, str(script), str(path)], check=True, capture_output=True)
    load = "import sys, zoo\ntry:\n zoo.load(sys.argv[1], role='subject', trust_code=sys.argv[2] == '1')\n"
    load += "except ValueError as e:\n print('refused:', e)\n"
    refused = subprocess.run([sys.executable, "-c", load, str(path), "0"], capture_output=True, text=True)
    assert "refused: refusing to load TorchScript" in refused.stdout and "PAYLOAD RAN" not in refused.stdout
    trusted = subprocess.run([sys.executable, "-c", load, str(path), "1"], capture_output=True, text=True)
    assert "PAYLOAD RAN" in trusted.stdout  # what --trust-code accepts: the file's code runs at load


def test_torch_export_program_only_with_trust_code(tmp_path):
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3)).eval()
    x = torch.rand(2, 3, 2, 2)
    path = tmp_path / "net.pt2"
    torch.export.save(torch.export.export(net, (x,)), str(path))
    with pytest.raises(ValueError, match="refusing to load torch.export program .* without trust_code"):
        zoo.load(path, role="subject")
    s = zoo.load(path, role="subject", trust_code=True)
    torch.testing.assert_close(s(x), net(x), atol=1e-6, rtol=1e-6)


def test_factory_needs_trust_code(tmp_path):
    save_file(DigitsCNN().state_dict(), str(tmp_path / "w.safetensors"))
    with pytest.raises(ValueError, match="refusing to import 'zoo.architectures:DigitsCNN' without trust_code"):
        zoo.load("zoo.architectures:DigitsCNN", role="subject", weights=tmp_path / "w.safetensors")


def test_hub_id_offline_gives_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="offline"):
        zoo.load("someone/some-ddpm-model", role="prior")


def test_unknown_names_and_bare_safetensors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model 'not a model'"):
        zoo.load("not a model")
    save_file({"a": torch.zeros(1)}, str(tmp_path / "w.safetensors"))
    with pytest.raises(ValueError, match="bare weights"):
        zoo.load(tmp_path / "w.safetensors", role="subject")
    with pytest.raises(ValueError, match="role must be"):
        zoo.load("color-mnist-ae", role="posterior")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="neither a zoo model directory"):
        zoo.load(tmp_path / "empty")
