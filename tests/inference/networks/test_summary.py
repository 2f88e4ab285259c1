"""Summary networks: permutation invariance and any set size (DeepSet), shapes, bad input."""

import pytest
import torch

from inference.networks.summary import Conv1dSummary, DeepSet, Flatten, MLPSummary, build_summary


def test_deepset_is_permutation_invariant_for_any_set_size(generator):
    net = DeepSet(3, 5, hidden=16).double()
    for k in (1, 2, 7, 40):
        x = torch.randn(4, k, 3, generator=generator, dtype=torch.float64)
        perm = torch.randperm(k, generator=generator)
        # exact identity up to the summation order of the mean pool: float64 round-off
        assert torch.allclose(net(x), net(x[:, perm]), atol=1e-12)
        assert net(x).shape == (4, 5)


def test_deepset_sees_the_set_size(generator):
    # the same elements repeated: the mean pool is identical, only log K tells the sets apart
    net = DeepSet(2, 4, hidden=8).double()
    x = torch.randn(1, 3, 2, generator=generator, dtype=torch.float64)
    assert not torch.allclose(net(x), net(x.repeat(1, 4, 1)))


def test_deepset_batches_over_leading_dims(generator):
    net = DeepSet(2, 4, hidden=8)
    x = torch.randn(2, 3, 6, 2, generator=generator)
    h = net(x)
    assert h.shape == (2, 3, 4)
    assert torch.allclose(h[1, 2], net(x[1, 2]), atol=1e-6)


def test_deepset_rejects_empty_sets_and_wrong_element_size():
    net = DeepSet(2, 4, hidden=8)
    with pytest.raises(ValueError, match="empty set"):
        net(torch.zeros(3, 0, 2))
    with pytest.raises(ValueError, match=r"\(\*, K, 2\)"):
        net(torch.zeros(3, 5, 3))


@pytest.mark.parametrize(
    "net, obs_shape",
    [
        (MLPSummary((2, 3), 7), (2, 3)),
        (Conv1dSummary((8,), 7), (8,)),
        (Conv1dSummary((2, 8), 7), (2, 8)),
    ],
)
def test_fixed_size_summaries_shape(net, obs_shape, generator):
    x = torch.randn(4, 5, *obs_shape, generator=generator)
    h = net(x)
    assert h.shape == (4, 5, 7)
    assert torch.allclose(h[3, 1], net(x[3, 1].unsqueeze(0))[0], atol=1e-5)


def test_flatten_and_unknown_kind():
    x = torch.arange(24.0).reshape(2, 3, 4)
    assert torch.equal(Flatten((3, 4))(x), x.reshape(2, 12))
    assert build_summary("none", (3, 4), out_dim=1).out_dim == 12
    with pytest.raises(ValueError, match="summary must be one of"):
        build_summary("transformer", (2,), out_dim=4)
