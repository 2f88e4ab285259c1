"""`zoo fiber` end to end with a third-party TorchScript subject and a saved tiny prior; bad inputs fail early."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from diffusers import DDIMScheduler, UNet2DModel

import zoo
from inference.results import read_fibers
from zoo_cli.main import main


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, stride=2)
        self.head = torch.nn.Linear(4 * 7 * 7, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.conv(x)).flatten(1))


class _ArgmaxNet(_Net):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.conv(x)).flatten(1)).argmax(-1)


def _torchscript(path, cls=_Net):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        torch.jit.save(torch.jit.script(cls().eval()), str(path))
    return str(path)


@pytest.fixture
def prior_dir(tmp_path):
    def make(input_range=(0.0, 1.0)):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            net = UNet2DModel(
                sample_size=16,
                in_channels=3,
                out_channels=3,
                block_out_channels=(8, 8),
                layers_per_block=1,
                down_block_types=("DownBlock2D", "DownBlock2D"),
                up_block_types=("UpBlock2D", "UpBlock2D"),
                norm_num_groups=4,
            )
        meta = {"input": {"range": list(input_range)}}
        prior = zoo.DiffusionPrior(net, DDIMScheduler(), normalization={"mean": 0.5, "std": 0.5}, meta=meta)
        d = tmp_path / f"prior{input_range[0]:g}"
        if not d.exists():
            zoo.save(prior, d)
        return str(d)

    return make


def _ndtm(subject: str, prior: str) -> list[str]:
    """A tiny NDTM run of a (trusted) TorchScript subject: 3 samples, 3 steps of 2 inner steps, 40 references."""
    args = ["fiber", "--subject", subject, "--trust-code", "--prior", prior, "--input", "3", "-n", "3"]
    return [*args, "--steps", "3", "--inner-steps", "2", "--gamma", "20", "--reference-size", "40"]


def test_fiber_end_to_end_with_a_torchscript_subject(tmp_path, prior_dir):
    subject = _torchscript(tmp_path / "subject.pt")
    out = tmp_path / "out"
    args = [*_ndtm(subject, prior_dir()), "--batch-size", "2", "--out", str(out)]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "nearest neighbour" in r.output and "fiber loss" in r.output
    res = read_fibers(out / "fibers.nc")
    assert res.samples.shape == (1, 3, 1, 3, 16, 16) and res.fiber_loss.shape == (1, 3, 1)
    assert res.traces["terminal"].shape == (1, 3, 1, 3) and res.gamma.shape == (3,)
    assert res.neighbour.shape == res.augmented.shape == (1, 3, 16, 16)
    # the stored losses are the subject's own: recompute them from the stored samples
    phi = zoo.load(subject, role="subject", trust_code=True)
    with torch.no_grad():
        h = phi(torch.as_tensor(res.target))
        ht = phi(torch.as_tensor(res.samples[0, :, 0]))
    np.testing.assert_allclose(res.fiber_loss[0, :, 0], (ht - h).pow(2).sum(-1).numpy(), rtol=1e-4, atol=1e-6)
    assert (out / "fibers.png").stat().st_size > 0
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 2 and "already exists" in again.output


def test_fiber_refine_lowers_the_fiber_loss(tmp_path, prior_dir):
    # Same seed, same NDTM samples; --refine then descends on the fiber loss in a 16-d PCA latent of the 40
    # reference images. A 5-feature smooth subject is reachable in 16 latent dims: 100 Adam steps cut the mean
    # loss by far more than the asserted 2x (the PCA round trip itself may raise it first).
    subject = _torchscript(tmp_path / "subject.pt")
    common = [*_ndtm(subject, prior_dir()), "--seed", "4"]
    plain = CliRunner().invoke(main, [*common, "--out", str(tmp_path / "plain")])
    assert plain.exit_code == 0, plain.output
    refined = CliRunner().invoke(main, [*common, "--refine", "--refine-dim", "16", "--out", str(tmp_path / "ref")])
    assert refined.exit_code == 0, refined.output
    assert "refinement (100 steps, 16-d PCA latent)" in refined.output
    a, b = read_fibers(tmp_path / "plain" / "fibers.nc"), read_fibers(tmp_path / "ref" / "fibers.nc")
    assert b.method_options["fiber_loss_before_refine"] == pytest.approx(float(a.fiber_loss.mean()), rel=1e-6)
    assert b.method_options["refine"]["latent_dim"] == 16
    assert float(b.fiber_loss.mean()) < 0.5 * float(a.fiber_loss.mean())
    # the stored losses are the subject's own on the stored (refined, clipped to [0, 1]) samples
    assert b.samples.min() >= 0.0 and b.samples.max() <= 1.0
    phi = zoo.load(subject, role="subject", trust_code=True)
    with torch.no_grad():
        h = phi(torch.as_tensor(b.target))
        ht = phi(torch.as_tensor(b.samples[0, :, 0]))
    np.testing.assert_allclose(b.fiber_loss[0, :, 0], (ht - h).pow(2).sum(-1).numpy(), rtol=1e-4, atol=1e-6)
    too_big = CliRunner().invoke(main, [*common, "--refine", "--refine-dim", "41", "--out", str(tmp_path / "big")])
    assert too_big.exit_code == 2 and "--refine-dim" in too_big.output
    assert not (tmp_path / "big" / "fibers.nc").exists()


def _fails(args, tmp_path, match):
    out = tmp_path / "bad"
    r = CliRunner().invoke(
        main, ["fiber", *args, "-n", "2", "--steps", "2", "--reference-size", "20", "--out", str(out)]
    )
    assert r.exit_code == 2, r.output
    line = [s for s in r.output.splitlines() if s.startswith("Error:")]
    assert len(line) == 1 and match in line[0], r.output
    assert not (out / "fibers.nc").exists()  # refused before sampling: nothing written


def test_bad_inputs_are_one_line_errors_before_sampling(tmp_path, prior_dir):
    subject = _torchscript(tmp_path / "subject.pt")
    wrong = tmp_path / "small.npy"
    np.save(wrong, np.random.default_rng(0).random((3, 8, 8)).astype(np.float32))
    _fails(["--subject", subject, "--trust-code", "--prior", prior_dir(), "--input", str(wrong)], tmp_path, "shape")
    gray = tmp_path / "gray.npy"
    np.save(gray, np.random.default_rng(0).random((1, 16, 16)).astype(np.float32))
    _fails(["--subject", subject, "--trust-code", "--prior", prior_dir(), "--input", str(gray)], tmp_path, "shape")
    argmax = _torchscript(tmp_path / "argmax.pt", _ArgmaxNet)
    _fails(
        ["--subject", argmax, "--trust-code", "--prior", prior_dir(), "--input", "0"], tmp_path, "not differentiable"
    )
    # a prior making data in [-1, 1] against the shipped autoencoder's [0, 1]
    _fails(["--subject", "color-mnist-ae", "--prior", prior_dir((-1.0, 1.0)), "--input", "0"], tmp_path, "range")
    nan = tmp_path / "nan.npy"
    np.save(nan, np.full((3, 16, 16), np.nan, dtype=np.float32))
    _fails(["--subject", subject, "--trust-code", "--prior", prior_dir(), "--input", str(nan)], tmp_path, "NaN")
    _fails(["--subject", subject, "--trust-code", "--prior", prior_dir(), "--input", "99"], tmp_path, "outside")
    # a TorchScript subject carries code: refused without --trust-code, in one line that says how to consent
    _fails(["--subject", subject, "--prior", prior_dir(), "--input", "0"], tmp_path, "without trust_code")


def test_fiber_conditional_method_trains_and_samples(tmp_path):
    subject = _torchscript(tmp_path / "subject.pt")
    out = tmp_path / "cond"
    args = [
        "fiber",
        "--subject",
        subject,
        "--trust-code",
        "--method",
        "conditional",
        "--fm-steps",
        "3",
        "--input",
        "2",
        "-n",
        "2",
        "--reference-size",
        "30",
        "--out",
        str(out),
    ]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    res = read_fibers(out / "fibers.nc")
    assert res.method == "conditional" and res.samples.shape == (1, 2, 1, 3, 16, 16)
    assert res.gamma is None and res.traces == {}
    missing = CliRunner().invoke(
        main, ["fiber", "--subject", subject, "--trust-code", "--input", "2", "--out", str(tmp_path / "x")]
    )
    assert missing.exit_code == 2 and "--prior" in missing.output


def test_fiber_of_a_factory_subject_with_safetensors_weights(tmp_path, prior_dir):
    from safetensors.torch import save_file

    from zoo.architectures import DigitsCNN

    weights = tmp_path / "w.safetensors"
    save_file(DigitsCNN().state_dict(), str(weights))
    spec = "zoo.architectures:DigitsCNN"
    r = CliRunner().invoke(main, [*_ndtm(spec, prior_dir()), "--weights", str(weights), "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert read_fibers(tmp_path / "o" / "fibers.nc").samples.shape == (1, 3, 1, 3, 16, 16)
    # importing the factory's module needs consent; --weights belongs to factories only
    _fails(["--subject", spec, "--weights", str(weights), "--prior", prior_dir(), "--input", "0"], tmp_path,
           "without trust_code")  # fmt: skip
    _fails(["--subject", "color-mnist-ae", "--weights", str(weights), "--prior", prior_dir(), "--input", "0"],
           tmp_path, "only used with")  # fmt: skip


def test_a_collapsed_conditional_model_is_refused_in_one_line(tmp_path):
    """A heavy fiber-loss weight collapses the conditional model onto near copies (likelihood gap ~3 nats/dim at
    these settings); the CLI refuses to write its samples."""
    out = tmp_path / "c"
    args = ["fiber", "--subject", "color-mnist-ae", "--method", "conditional", "--input", "0", "-n", "2"]
    r = CliRunner().invoke(main, [*args, "--option", "fiber_weight=1", "--option", "train.steps=60", "--out", str(out)])
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 2 and "collapsed" in lines[-1] and "fiber_weight" in lines[-1], r.output
    assert not out.exists()
