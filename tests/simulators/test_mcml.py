"""The MCML light-transport core: published benchmarks, exact limits, energy conservation, error bars.

Tolerance bases: Monte-Carlo claims within 4 standard errors (false-alarm rate ~6e-5 per claim) plus the rounding
of the published number; deterministic identities (specular reflectance, Fresnel formulas) tight.
"""

import math

import pytest
import torch

from simulators import mcml

VDH = {"mu_a": 10.0, "mu_s": 90.0, "g": 0.75, "n": 1.0, "d": 0.02}  # van de Hulst slab, Wang et al. 1995 table
VDH_RD, VDH_TT = 0.09739, 0.66096
# Two layers (mm values of the MCML manual example in 1/cm and cm), semi-infinite second layer
TWO = {
    "mu_a": (20.0, 10.0),
    "mu_s": (200.0, 200.0),
    "g": (0.7, 0.9),
    "n": (1.3, 1.4),
    "d": (0.01, math.inf),
}
TWO_RSP, TWO_RD = 0.0170, 0.1050


def _layers(spec, batch=(), dtype=torch.float32):
    return {k: torch.tensor(v, dtype=dtype).reshape(-1).expand(*batch, -1).clone() for k, v in spec.items()}


def _run(spec, photons, seed=0, batch=(), **kw):
    return mcml.simulate(**_layers(spec, batch), photons=photons, generator=torch.Generator().manual_seed(seed), **kw)


def test_van_de_hulst_slab():
    r = _run(VDH, 100_000)
    # published values are given to 5 decimals: +-5e-6 rounding
    assert abs(r.diffuse.item() - VDH_RD) < 4 * r.diffuse_se.item() + 5e-6
    assert abs(r.transmittance.item() - VDH_TT) < 4 * r.transmittance_se.item() + 5e-6
    assert r.specular.item() == 0.0  # index-matched slab


def test_two_layer_mcml_example():
    r = _run(TWO, 20_000)
    # specular is deterministic: ((1 - 1.3) / (1 + 1.3))^2 = 0.017013, published rounded to 4 decimals
    assert r.specular.item() == pytest.approx(((1 - 1.3) / 2.3) ** 2, abs=1e-7)
    assert abs(r.specular.item() - TWO_RSP) < 5e-5
    # published Rd has 4 decimals and is itself a Monte Carlo estimate: allow 5e-4 on top of 4 SE
    assert abs(r.diffuse.item() - TWO_RD) < 4 * r.diffuse_se.item() + 5e-4
    assert r.transmittance.item() == 0.0  # semi-infinite


@pytest.mark.slow
def test_published_benchmarks_at_full_precision():
    r = _run(VDH, 2_000_000, seed=1)
    assert abs(r.diffuse.item() - VDH_RD) < 4 * r.diffuse_se.item() + 5e-6
    assert abs(r.transmittance.item() - VDH_TT) < 4 * r.transmittance_se.item() + 5e-6
    r = _run(TWO, 1_000_000, seed=1)
    assert abs(r.diffuse.item() - TWO_RD) < 4 * r.diffuse_se.item() + 5e-4


def test_energy_is_conserved_exactly_without_absorption():
    # no absorption -> no roulette: every packet leaves with its full weight 1 - R_sp
    spec = {"mu_a": (0.0, 0.0), "mu_s": (50.0, 120.0), "g": (0.8, 0.3), "n": (1.4, 1.33), "d": (0.01, 0.02)}
    r = _run(spec, 4000)
    total = r.specular + r.diffuse + r.transmittance
    assert total.item() == pytest.approx(1.0, abs=1e-5)
    assert r.absorbed.item() == 0.0


def test_energy_is_conserved_in_expectation_with_roulette():
    spec = {"mu_a": (5.0, 1.0, 3.0), "mu_s": (100.0, 150.0, 60.0), "g": (0.9, 0.8, 0.85)}
    spec.update(n=(1.36, 1.36, 1.38), d=(0.07, 0.06, 0.05))
    r = _run(spec, 20_000)
    total = (r.specular + r.diffuse + r.transmittance + r.absorbed).item()
    # the sd of a sum is at most the sum of the sds
    bound = 4 * (r.diffuse_se + r.transmittance_se + r.absorbed_se).item()
    assert abs(total - 1.0) < bound
    assert r.unfinished.item() == 0.0


def test_pure_absorber_follows_beer_lambert():
    # no scattering and matched indices: a packet is transmitted iff its first step exceeds d
    spec = {"mu_a": (30.0,), "mu_s": (0.0,), "g": (0.0,), "n": (1.0,), "d": (0.05,)}
    r = _run(spec, 20_000)
    assert abs(r.transmittance.item() - math.exp(-1.5)) < 4 * r.transmittance_se.item()
    assert r.diffuse.item() == 0.0


def test_standard_error_matches_spread_of_repeated_runs():
    # 400 independent runs as a batch: their spread estimates the true sd to ~1/sqrt(2 * 399) = 3.5%
    r = _run(VDH, 500, batch=(400,))
    spread = r.diffuse.std().item()
    assert spread == pytest.approx(r.diffuse_se.mean().item(), rel=4 * 0.035 + 0.02)


def test_batched_shapes_dtype_and_determinism():
    props = _layers(TWO, (2, 3), dtype=torch.float64)
    a = mcml.simulate(**props, photons=50, generator=torch.Generator().manual_seed(3))
    b = mcml.simulate(**props, photons=50, generator=torch.Generator().manual_seed(3))
    assert a.diffuse.shape == (2, 3) and a.diffuse.dtype == torch.float64
    assert torch.equal(a.diffuse, b.diffuse) and torch.equal(a.absorbed, b.absorbed)
    assert a.photons == 50 and a.steps > 0


def test_ambient_indices_broadcast_per_problem():
    props = _layers(VDH, (2,))
    r = mcml.simulate(**props, n_above=torch.tensor([1.0, 1.5]), photons=10, generator=torch.Generator())
    assert r.specular.tolist() == pytest.approx([0.0, 0.04], abs=1e-7)


@pytest.mark.parametrize("n_i, n_t", [(1.0, 1.5), (1.5, 1.0), (1.36, 1.38), (1.4, 1.0)])
def test_fresnel_against_the_textbook_formulas(n_i, n_t):
    cos_i = torch.linspace(0.0, 1.0, 101, dtype=torch.float64)
    r, cos_t = mcml.fresnel(torch.tensor(n_i, dtype=torch.float64), torch.tensor(n_t, dtype=torch.float64), cos_i)
    sin_t = n_i / n_t * torch.sqrt(1 - cos_i**2)
    tir = sin_t >= 1
    ct = torch.sqrt((1 - sin_t**2).clamp_min(0))
    rs = ((n_i * cos_i - n_t * ct) / (n_i * cos_i + n_t * ct)) ** 2
    rp = ((n_i * ct - n_t * cos_i) / (n_i * ct + n_t * cos_i)) ** 2
    expected = torch.where(tir, torch.ones_like(rs), (rs + rp) / 2)
    ok = cos_i > 1e-6  # MCML treats grazing incidence (cos < 1e-6) as total reflection
    assert torch.allclose(r[ok], expected[ok], atol=1e-9)
    # near the critical angle sqrt(1 - sin^2) amplifies float64 rounding (1e-16 -> ~1e-8)
    assert torch.allclose(cos_t[~tir & ok], ct[~tir & ok], atol=1e-7)
    assert r[-1].item() == pytest.approx(((n_i - n_t) / (n_i + n_t)) ** 2, abs=1e-12)


def test_fresnel_matched_indices_reflect_nothing():
    cos_i = torch.rand(50, generator=torch.Generator().manual_seed(0)).double()
    r, cos_t = mcml.fresnel(torch.tensor(1.36).double(), torch.tensor(1.36).double(), cos_i)
    assert (r == 0).all() and torch.equal(cos_t, cos_i)


@pytest.mark.parametrize("g", [0.0, 0.5, 0.9, -0.3])
def test_henyey_greenstein_mean_cosine_is_g(g):
    u = torch.rand(200_000, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    c = mcml.henyey_greenstein_cos(torch.full_like(u, g), u)
    se = c.std().item() / math.sqrt(len(c))
    assert abs(c.mean().item() - g) < 4 * se
    # second moment of HG: (1 + 2 g^2) / 3
    se2 = (c**2).std().item() / math.sqrt(len(c))
    assert abs((c**2).mean().item() - (1 + 2 * g * g) / 3) < 4 * se2


@pytest.mark.parametrize(
    "change, match",
    [
        ({"mu_a": (-1.0,)}, ">= 0"),
        ({"g": (1.0,)}, r"\(-1, 1\)"),
        ({"n": (0.0,)}, "> 0"),
        ({"d": (0.0,)}, "> 0"),
        ({"mu_a": (math.nan,)}, "finite"),
    ],
)
def test_bad_inputs_raise(change, match):
    spec = {**VDH, **change}
    with pytest.raises(ValueError, match=match):
        _run(spec, 10)


def test_only_the_last_layer_may_be_semi_infinite():
    spec = {**TWO, "d": (math.inf, 0.1)}
    with pytest.raises(ValueError, match="last layer"):
        _run(spec, 10)
    with pytest.raises(ValueError, match="photons"):
        _run(TWO, 1)


@pytest.mark.gpu
def test_runs_on_the_device_of_its_inputs():
    props = {k: v.cuda() for k, v in _layers(VDH).items()}
    r = mcml.simulate(**props, photons=100_000, generator=torch.Generator(device="cuda").manual_seed(0))
    assert r.diffuse.device.type == "cuda"
    assert abs(r.diffuse.item() - VDH_RD) < 4 * r.diffuse_se.item() + 5e-6
