"""Subject: output modes, layer hooks (equal to the manual computation, stopping early), gradients, checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from zoo import Subject
from zoo.architectures import DigitsCNN


class Boom(nn.Module):
    def forward(self, x):
        raise AssertionError("the forward pass should have stopped before this layer")


def _net() -> DigitsCNN:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return DigitsCNN(width=4, embed_dim=8).eval()


def test_output_modes():
    net, x = _net(), torch.rand(4, 3, 16, 16)
    logits = net(x)
    torch.testing.assert_close(Subject(net)(x), logits, atol=0, rtol=0)
    torch.testing.assert_close(Subject(net, output="probs")(x), logits.softmax(-1))
    torch.testing.assert_close(Subject(net, output="log_probs")(x), logits.log_softmax(-1))


def test_layer_hook_equals_manual_and_stops_early():
    net, x = _net(), torch.rand(4, 3, 16, 16)
    h = Subject(net, layer="embedding")(x)
    torch.testing.assert_close(h, net.embedding(net.features(x)), atol=0, rtol=0)
    net.head = Boom()
    assert Subject(net, layer="embedding")(x).shape == (4, 8)
    assert Subject(net, layer="features.2")(x).shape == (4, 4, 16, 16)


def test_gradients_reach_the_input():
    net = _net()
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    for s in (Subject(net), Subject(net, layer="embedding")):
        x.grad = None
        s(x).pow(2).sum().backward()
        assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_bad_options_and_inputs_fail_with_one_line_messages():
    net = _net()
    with pytest.raises(ValueError, match="no layer 'nope'"):
        Subject(net, layer="nope")
    with pytest.raises(ValueError, match="output must be"):
        Subject(net, output="bogus")
    with pytest.raises(ValueError, match="applies to the module's output"):
        Subject(net, layer="embedding", output="probs")
    with pytest.raises(ValueError, match=r"expects inputs of shape \(B, 3, 16, 16\)"):
        Subject(net, input_shape=(3, 16, 16))(torch.rand(2, 3, 8, 8))
