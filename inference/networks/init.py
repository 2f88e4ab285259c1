"""Reproducible initialization of zoo's networks: weights drawn from an explicit generator, never the global one."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def reset_parameters(model: nn.Module, generator: torch.Generator) -> None:
    """Re-draw every linear / conv weight of ``model`` from ``generator`` with torch's default initialization.

    Training is then reproducible without touching the global random state. Layers marked ``zero_init`` (the last
    layers of the coupling subnetworks) start at zero, so every coupling block starts as the identity.

    Arguments:
        model: any module; its ``nn.Linear`` and ``nn.Conv1d`` layers are re-initialized in place.
        generator: the source of the weights.
    """
    for module in model.modules():
        if isinstance(module, nn.Linear | nn.Conv1d):
            if getattr(module, "zero_init", False):
                nn.init.zeros_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
                continue
            nn.init.kaiming_uniform_(module.weight, a=5**0.5, generator=generator)
            fan_in = module.weight[0].numel()
            if module.bias is not None:
                nn.init.uniform_(module.bias, -(fan_in**-0.5), fan_in**-0.5, generator=generator)
