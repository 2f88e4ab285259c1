"""The fiber path on CUDA (``pytest -m gpu``; skipped without a GPU): prior sampling, NDTM and ``zoo fiber --device
cuda`` with the shipped pair, each checked against the same computation on the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import zoo
from inference.fibers import sample_fibers
from inference.fibers.ndtm import NDTMOptions
from inference.results import read_fibers
from zoo_cli.main import main

pytestmark = pytest.mark.gpu


def test_prior_samples_on_cuda_match_cpu_from_the_same_noise():
    prior = zoo.load("color-mnist-ddpm", role="prior")
    x_T = torch.randn(8, *prior.shape, generator=torch.Generator().manual_seed(0))
    # DDIM with eta = 0 is deterministic given x_T: the two devices agree up to float error (TF32 convolutions on
    # recent GPUs round to ~1e-3 relative per layer, so the bound is loose, far below a pixel's visible change).
    cpu = prior.sample(8, num_steps=10, eta=0.0, x_T=x_T)
    gpu = prior.to("cuda").sample(8, num_steps=10, eta=0.0, x_T=x_T.cuda())
    assert gpu.device.type == "cuda"
    assert (gpu.cpu() - cpu).abs().max() < 2e-2


def test_ndtm_on_cuda_beats_the_nearest_neighbour():
    r = sample_fibers(
        "color-mnist-ae", 7, 4, method="ndtm", prior="color-mnist-ddpm", options=NDTMOptions(), seed=0,
        device="cuda",
    )  # fmt: skip
    loss = np.asarray(r.fiber_loss)
    assert np.isfinite(loss).all()
    assert loss.mean() < np.asarray(r.baselines["nearest_neighbour"]).mean()


def test_zoo_fiber_device_cuda_end_to_end(tmp_path):
    out = tmp_path / "fib"
    args = ["fiber", "--subject", "color-mnist-ae", "--prior", "color-mnist-ddpm", "--input", "0", "-n", "2"]
    res = CliRunner().invoke(main, [*args, "--device", "cuda", "--out", str(out)])
    assert res.exit_code == 0, res.output
    f = read_fibers(out / "fibers.nc")
    assert np.isfinite(np.asarray(f.fiber_loss)).all()
