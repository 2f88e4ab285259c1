"""Shared test settings: deterministic, single-threaded torch so the suite is fast and reproducible on 2 cores."""

import signal
import subprocess
import time

import pytest
import torch
from diffusers import UNet2DModel

torch.set_num_threads(1)


def _sigkill_when(cmd: list[str], ready, delay: float, timeout: float = 120.0, **popen) -> bool:
    """Start ``cmd``, wait until ``ready()`` holds (polling every 0.5 ms), ``delay`` seconds more, then SIGKILL it.
    False if it had finished by then (nothing killed)."""
    p = subprocess.Popen(cmd, **popen)
    t0 = time.monotonic()
    while p.poll() is None and not ready() and time.monotonic() - t0 < timeout:
        time.sleep(0.0005)
    time.sleep(delay)
    if p.poll() is not None:
        return False
    p.send_signal(signal.SIGKILL)
    p.wait()
    return True


@pytest.fixture
def sigkill_when():
    """The crash tests' killer: ``sigkill_when(cmd, ready, delay) -> killed``."""
    return _sigkill_when


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def _tiny_unet(channels: int = 3, size: int = 8, seed: int = 0) -> UNet2DModel:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return UNet2DModel(
            sample_size=size,
            in_channels=channels,
            out_channels=channels,
            block_out_channels=(8, 8),
            layers_per_block=1,
            down_block_types=("DownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "UpBlock2D"),
            norm_num_groups=4,
        ).eval()


@pytest.fixture
def tiny_unet():
    """A factory of tiny, seeded UNet2DModels: ``tiny_unet(channels=3, size=8, seed=0)``."""
    return _tiny_unet
