"""Tiny diffusers models for the zoo tests (a few thousand parameters, CPU)."""

from __future__ import annotations

import pytest
import torch
from diffusers import UNet2DModel


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
