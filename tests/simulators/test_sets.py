"""The set helpers of simulators.protocol shared by the set-valued simulators (arm, tissue) and their callers."""

import pytest
import torch

import simulators
from simulators.protocol import expand_to_set

SET_ARM = {"noise_std": 0.1, "n_obs": "2-12"}


def test_is_set_valued():
    assert simulators.is_set_valued(simulators.get("arm", **SET_ARM))
    assert simulators.is_set_valued(simulators.get("tissue", n_obs=3))
    assert not simulators.is_set_valued(simulators.get("arm"))


def test_expand_to_set_repeats_each_value_k_times():
    arm = simulators.get("arm", **SET_ARM)
    y = torch.arange(6.0).reshape(3, 2)
    s = expand_to_set(arm, y, 5)
    assert s.shape == (3, 5, 2) and torch.equal(s, y[:, None, :].expand(3, 5, 2))
    assert expand_to_set(arm, y, None).shape == (3, 12, 2)  # default: the top of the range
    assert expand_to_set(simulators.get("arm"), y, None) is y  # no sets: unchanged
    with pytest.raises(ValueError, match="positive integer set size"):
        expand_to_set(arm, y, 0)
    with pytest.raises(ValueError, match="only accepted by a set-valued arm"):
        expand_to_set(simulators.get("arm"), y, 3)


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((4, 3), r"must be a set of shape \(\*, K, 2\)"),
        ((0, 2), "empty set"),
        ((1, 2), "holds sets of 1 elements; arm takes sets of 2 to 12"),
        ((5, 13, 2), "holds sets of 13 elements"),
    ],
)
def test_set_shape_rejects_bad_sets_in_one_line(shape, message):
    with pytest.raises(ValueError, match=message) as info:
        simulators.set_shape(simulators.get("arm", **SET_ARM), torch.zeros(shape))
    assert "\n" not in str(info.value)


def test_set_shape_reads_k_from_the_data():
    arm = simulators.get("arm", **SET_ARM)
    assert simulators.set_shape(arm, torch.zeros(7, 2)) == (7, 2)
    assert simulators.set_shape(arm, torch.zeros(3, 12, 2)) == (12, 2)
