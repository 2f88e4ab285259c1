"""``zoo ood`` end to end on the shipped prior and on a user's diffusers directory (real files, real commands), its
one-line refusals of bad inputs, and ``--ood-check`` on ``zoo fiber`` and ``zoo infer``."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from diffusers import DDPMScheduler

import simulators
from inference.results import read_ood
from zoo_cli.main import main

CHEAP = ["--option", "attempts=1", "--option", "num_steps=5"]


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Two color-MNIST images and one uniform-noise image, (3, 3, 16, 16)."""
    cm = simulators.get("color-mnist")
    x = cm.sample(2, generator=torch.Generator().manual_seed(5)).numpy()
    noise = np.random.default_rng(0).uniform(0, 1, (1, 3, 16, 16))
    path = tmp_path_factory.mktemp("ood") / "images.npy"
    np.save(path, np.concatenate([x, noise]).astype(np.float32))
    return path


def test_ood_on_the_shipped_prior(tmp_path, images):
    out = tmp_path / "out"
    r = run("ood", "--prior", "color-mnist-ddpm", "--input", images, "--reference-size", 20, *CHEAP, "--out", out)
    assert r.exit_code == 0, r.output
    assert "of 3 inputs atypical" in r.output and "color-mnist (tied), the training data" in r.output
    res = read_ood(out / "ood.nc")
    assert res.inputs.shape == (3, 3, 16, 16) and res.reference_score.shape == (20,)
    assert res.reconstruction.shape == res.inputs.shape and res.method == "lmd" and res.higher_is_ood
    assert int(np.argmax(res.score)) == 2  # the noise image is the least typical
    assert (out / "ood_scores.png").stat().st_size > 0 and (out / "ood_atypical.png").stat().st_size > 0
    again = CliRunner().invoke(main, ["ood", "--prior", "color-mnist-ddpm", "--input", str(images), "--out", str(out)])
    assert again.exit_code == 2 and "--overwrite" in again.output


def test_ood_likelihood_on_a_users_diffusers_directory(tmp_path, images, tiny_unet):
    tiny_unet(size=16).save_pretrained(tmp_path / "mine")
    DDPMScheduler(num_train_timesteps=100).save_pretrained(tmp_path / "mine")
    out = tmp_path / "out"
    args = ["--reference-size", 6, "--method", "elbo", "--option", "num_steps=4", "--out", out]
    r = run("ood", "--prior", tmp_path / "mine", "--input", images, *args)
    assert r.exit_code == 0, r.output
    assert "samples of the prior" in r.output and "lower bound" in r.output
    res = read_ood(out / "ood.nc")
    assert res.kind.startswith("evidence lower bound") and not res.higher_is_ood and res.reconstruction is None


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((2, 3, 28, 28), np.float32), "shape"),
        (np.zeros((2, 1, 16, 16), np.float32), "shape"),
        (np.full((2, 3, 16, 16), np.nan, np.float32), "NaN"),
        (np.zeros((0, 3, 16, 16), np.float32), "empty|shape"),
    ],
)
def test_bad_inputs_get_one_line_errors(tmp_path, array, message):
    np.save(tmp_path / "bad.npy", array)
    out = tmp_path / "out"
    r = CliRunner().invoke(
        main, ["ood", "--prior", "color-mnist-ddpm", "--input", str(tmp_path / "bad.npy"), "--out", str(out)] + CHEAP
    )
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and re.search(message, lines[0]), r.output
    assert not out.exists()


def test_one_image_is_a_batch_of_one(tmp_path):
    np.save(tmp_path / "one.npy", np.full((3, 16, 16), 0.5, np.float32))
    r = run(
        "ood", "--prior", "color-mnist-ddpm", "--input", tmp_path / "one.npy", "--method", "diffuse-denoise",
        "--reference-size", 8, "--out", tmp_path / "o",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert read_ood(tmp_path / "o" / "ood.nc").inputs.shape == (1, 3, 16, 16)


def test_fiber_ood_check_flags_noise(tmp_path):
    np.save(tmp_path / "noise.npy", np.random.default_rng(1).uniform(0, 1, (3, 16, 16)).astype(np.float32))
    args = ["fiber", "--subject", "color-mnist-ae", "--prior", "color-mnist-ddpm", "--input", tmp_path / "noise.npy"]
    r = run(*args, "-n", 1, "--steps", 2, "--reference-size", 10, "--ood-check", "--out", tmp_path / "f")
    assert r.exit_code == 0, r.output
    assert "ood-check: input atypical under color-mnist-ddpm (p = 0.00995" in r.output


def test_infer_ood_check_flags_a_far_observation(tmp_path):
    (tmp_path / "obs.csv").write_text("0.1,0.2\n5,9\n")
    args = ["infer", "-s", "arm", "--observation", tmp_path / "obs.csv", "-n", 20, "--n-resim", 0, "--no-plots"]
    r = run(*args, "--ood-check", "-q", "-o", tmp_path / "i")
    assert r.exit_code == 0, r.output
    assert "ood-check: 1 of 2 observations atypical at p < 0.01" in r.output and "#1" in r.output
