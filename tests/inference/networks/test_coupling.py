"""Coupling blocks: exact inverse, log-determinant against autograd, soft clamp, conditions, permutations."""

from __future__ import annotations

import pytest
import torch

from inference.networks.coupling import AffineCoupling, CouplingFlow, Permutation, soft_clamp
from inference.networks.init import reset_parameters


def _randomize(module: torch.nn.Module, seed: int = 0, std: float = 0.3) -> None:
    """Random weights everywhere (the default init makes every block the identity, which would test nothing)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0.0, std, generator=g)


@pytest.mark.parametrize("dim", [2, 3, 5, 16])
def test_flow_inverse_is_exact_in_float64(dim):
    flow = CouplingFlow(dim, blocks=4, hidden=32, layers=2, clamp=2.0).double()
    _randomize(flow)
    x = torch.randn(64, dim, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    z, log_det = flow(x)
    x_back, log_det_inv = flow.inverse(z)
    # exact identity up to float64 rounding (STYLE: invertibility atol 1e-4)
    assert torch.allclose(x_back, x, atol=1e-4, rtol=0)
    assert torch.allclose(log_det_inv, -log_det, atol=1e-10)
    assert not torch.allclose(z, x, atol=1e-2)  # the randomized flow is not the identity


def test_log_det_matches_autograd_jacobian():
    flow = CouplingFlow(5, blocks=3, hidden=16, layers=2, clamp=2.0).double()
    _randomize(flow, seed=3)
    x = torch.randn(6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        _, log_det = flow(x)
    for i in range(x.shape[0]):
        jac = torch.autograd.functional.jacobian(lambda v: flow(v.unsqueeze(0))[0].squeeze(0), x[i])
        expected = torch.linalg.slogdet(jac).logabsdet
        # STYLE: log-determinant against autograd to 1e-3; float64 makes the agreement far tighter
        assert abs(float(log_det[i] - expected)) < 1e-3


def test_conditional_block_inverts_with_the_same_condition_and_depends_on_it():
    block = AffineCoupling(4, cond_dim=3, hidden=16, layers=2).double()
    _randomize(block, seed=4)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(10, 4, dtype=torch.float64, generator=g)
    c = torch.randn(10, 3, dtype=torch.float64, generator=g)
    u, ld = block(x, c)
    x_back, ld_inv = block.inverse(u, c)
    assert torch.allclose(x_back, x, atol=1e-10)
    assert torch.allclose(ld, -ld_inv, atol=1e-12)
    assert not torch.allclose(block(x, c + 1.0)[0], u, atol=1e-3)
    with pytest.raises(ValueError, match="condition"):
        block(x)


def test_soft_clamp_is_bounded_with_unit_slope_at_zero():
    s = torch.linspace(-100, 100, 1001, dtype=torch.float64)
    out = soft_clamp(s, 2.0)
    assert out.abs().max() <= 2.0
    eps = torch.tensor([1e-6], dtype=torch.float64)
    assert torch.allclose(soft_clamp(eps, 2.0) / eps, torch.ones(1, dtype=torch.float64), atol=1e-9)


def test_log_scale_of_one_block_is_bounded_by_the_clamp():
    block = AffineCoupling(4, hidden=16, layers=2, clamp=0.5).double()
    _randomize(block, seed=6, std=5.0)  # huge weights: unclamped log-scales would be large
    x = 10 * torch.randn(100, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    _, log_det = block(x)
    assert log_det.abs().max() <= 0.5 * 4 + 1e-9  # at most clamp per dimension


def test_permutation_is_fixed_by_the_seed_and_saved_as_a_buffer():
    a = CouplingFlow(8, blocks=2, hidden=8, seed=11)
    b = CouplingFlow(8, blocks=2, hidden=8, seed=11)
    perms_a = [m.perm for m in a.modules() if isinstance(m, Permutation)]
    perms_b = [m.perm for m in b.modules() if isinstance(m, Permutation)]
    assert all(torch.equal(p, q) for p, q in zip(perms_a, perms_b))
    assert any(k.endswith("perm") for k in a.state_dict())
    p = Permutation(6, generator=torch.Generator().manual_seed(0))
    x = torch.randn(3, 6)
    assert torch.equal(p.inverse(p(x)[0])[0], x)


def test_fresh_flow_is_the_identity_and_reset_is_reproducible():
    flow = CouplingFlow(4, blocks=2, hidden=8)
    x = torch.randn(5, 4)
    perm = torch.arange(4)
    for m in flow.modules():
        if isinstance(m, Permutation):
            perm = perm[m.perm]
    z, log_det = flow(x)
    assert torch.equal(z, x[:, perm]) and torch.equal(log_det, torch.zeros(5))
    a, b = CouplingFlow(4, blocks=2, hidden=8), CouplingFlow(4, blocks=2, hidden=8)
    reset_parameters(a, torch.Generator().manual_seed(3))
    reset_parameters(b, torch.Generator().manual_seed(3))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_bad_configuration_is_rejected():
    with pytest.raises(ValueError, match="dim >= 2"):
        AffineCoupling(1)
    with pytest.raises(ValueError, match="clamp"):
        AffineCoupling(4, clamp=0.0)
    with pytest.raises(ValueError, match="activation"):
        CouplingFlow(4, activation="nope")
