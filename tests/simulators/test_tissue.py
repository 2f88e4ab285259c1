"""The tissue simulator: prior, optics, camera bands, observation model, physics trends, table source.

Tolerance bases: deterministic formulas tight (float64 1e-12, float32 1e-6); Monte-Carlo claims within 4 standard
errors (false-alarm rate ~6e-5 each); tiny photon counts keep the file fast.
"""

import math
from pathlib import Path

import pytest
import torch

import simulators
from simulators import optics
from simulators.tissue import PARAM_NAMES, Tissue, TissuePrior

DATA = Path(simulators.__file__).parent / "data"


def _theta(so2=0.7, v_hb=0.03, a_mie=20.0, g=0.9, d=(800.0, 600.0, 500.0), dtype=torch.float32):
    rows = [so2]
    for dl in d:
        rows += [v_hb, a_mie, g, dl]
    return torch.tensor(rows, dtype=dtype)


# -- prior -----------------------------------------------------------------------------------------------------
def test_prior_names_units_and_support():
    sim = Tissue(source="live")
    assert len(sim.param_names) == 13 == len(sim.param_units)
    assert sim.param_names[:5] == ("sO2", "v_hb_1", "a_mie_1", "g_1", "d_1")
    assert sim.param_units[2] == "1/cm" and sim.param_units[4] == "um"
    theta = simulators.sample_prior(sim.prior, 20_000, generator=torch.Generator().manual_seed(0))
    assert theta.shape == (20_000, 13) and theta.dtype == torch.float32
    assert sim.prior.support.check(theta).all()
    d = theta[:, [4, 8, 12]]
    assert (d.min(0).values >= torch.tensor([600.0, 415.0, 395.0])).all()
    assert (d.max(0).values <= torch.tensor([1010.0, 847.0, 603.0])).all()
    assert (theta[:, [2, 6, 10]] > 0).all()


def test_prior_sample_mean_matches_the_analytic_mean():
    prior = TissuePrior()
    theta = prior.sample((40_000,), generator=torch.Generator().manual_seed(1)).double()
    se = theta.std(0) / math.sqrt(len(theta))
    assert ((theta.mean(0) - prior.mean.double()).abs() < 4 * se).all()


def test_prior_log_prob_by_hand():
    prior = TissuePrior()
    theta = _theta().double()
    widths = [1.0] + [w for lo, hi in ((600, 1010), (415, 847), (395, 603)) for w in (0.1, 0.15, hi - lo)]
    z = (20.0 - 18.9) / 10.2
    mass = 1 - 0.5 * math.erfc(18.9 / 10.2 / math.sqrt(2))  # P(a_mie > 0)
    normal = -0.5 * z * z - math.log(10.2 * math.sqrt(2 * math.pi)) - math.log(mass)
    expected = -sum(math.log(w) for w in widths) + 3 * normal
    assert prior.log_prob(theta).item() == pytest.approx(expected, abs=1e-9)
    outside = theta.clone()
    outside[3] = 0.99  # g_1 above 0.95
    assert prior.log_prob(outside).item() == -math.inf


# -- optics and camera -----------------------------------------------------------------------------------------
def test_absorption_uses_prahl_at_560nm():
    lam = torch.tensor([560.0, 561.0], dtype=torch.float64)
    mu_a = optics.absorption(torch.tensor(1.0).double(), torch.tensor(1.0).double(), lam)
    expected = math.log(10) * 120 * 32613.2 / 64500  # eps_HbO2(560) = 32613.2
    assert mu_a[0].item() == pytest.approx(expected, rel=1e-12)
    eps_o, eps_d = optics.extinction(torch.tensor([561.0], dtype=torch.float64))
    assert eps_d.item() == pytest.approx((53788 + optics.extinction(torch.tensor([562.0]).double())[1].item()) / 2)


def test_scattering_power_law():
    lam = torch.tensor([500.0, 1000.0], dtype=torch.float64)
    mu_s = optics.scattering(torch.tensor(20.0, dtype=torch.float64), torch.tensor(0.9, dtype=torch.float64), lam)
    assert mu_s.tolist() == pytest.approx([200.0, 200.0 * 2**-1.286], rel=1e-12)


def test_band_matrix_folds_and_interpolates():
    W = optics.band_matrix()
    assert W.shape == (8, len(optics.GRID))
    assert torch.allclose(W.sum(-1), torch.ones(8, dtype=torch.float64), atol=1e-12)
    grid = torch.tensor(optics.GRID, dtype=torch.float64)
    # 470 nm: the five grid points 466..474, equal weights
    row = W[0]
    assert grid[row > 0].tolist() == [466, 468, 470, 472, 474]
    assert torch.allclose(row[row > 0], torch.full((5,), 0.2, dtype=torch.float64))
    # 511 nm: halfway between the folded 510 and 512 -> 506..516 with half weight at the ends
    row = W[2]
    assert grid[row > 0].tolist() == [506, 508, 510, 512, 514, 516]
    assert row[row > 0].tolist() == pytest.approx([0.1, 0.2, 0.2, 0.2, 0.2, 0.1])
    sim = Tissue(source="live")
    assert len(sim.wavelengths) == 41 and sim.band_weights.shape == (8, 41)


def test_a_linear_spectrum_reads_its_band_centres():
    # the window is symmetric: a spectrum linear in lambda is read exactly at each band centre
    grid = torch.tensor(optics.GRID, dtype=torch.float64)
    bands = optics.band_matrix() @ (0.3 + 0.001 * grid)
    assert bands.tolist() == pytest.approx([0.3 + 0.001 * b for b in optics.BANDS], abs=1e-12)


# -- simulator -----------------------------------------------------------------------------------------------------
def test_live_simulate_shapes_dtype_determinism():
    sim = simulators.get("tissue", source="live", photons=16)
    theta = simulators.sample_prior(sim.prior, (2, 3), generator=torch.Generator().manual_seed(0))
    x1 = sim.simulate(theta, generator=torch.Generator().manual_seed(5))
    x2 = sim.simulate(theta, generator=torch.Generator().manual_seed(5))
    assert x1.shape == (2, 3, 8) and torch.equal(x1, x2)
    assert torch.allclose(x1.sum(-1), torch.ones(2, 3), atol=1e-6)  # L1-normalized
    x64 = sim.simulate(theta[0, 0].double(), generator=torch.Generator().manual_seed(5))
    assert x64.shape == (8,) and x64.dtype == torch.float64


def test_reflectance_standard_error_and_physical_range():
    sim = Tissue(source="live", photons=64)
    theta = simulators.sample_prior(sim.prior, 3, generator=torch.Generator().manual_seed(2))
    r, se = sim.reflectance(theta, generator=torch.Generator().manual_seed(3), return_se=True)
    assert r.shape == se.shape == (3, 8)
    assert ((r > 0) & (r < 1)).all() and (se > 0).all()


def test_observation_model_noise_and_normalization():
    sim = Tissue(source="live", snr=10.0, normalize=False)
    r = torch.full((20_000, 8), 0.3)
    x = sim.observe(r, generator=torch.Generator().manual_seed(0))
    rel = x / r - 1
    # clipping at 1e-5 and 1 is 7 sd away for r = 0.3: mean 0, sd 1 / SNR within 4 SE
    assert abs(rel.mean().item()) < 4 * 0.1 / math.sqrt(rel.numel())
    assert abs(rel.std().item() - 0.1) < 4 * 0.1 / math.sqrt(2 * rel.numel())
    clean = Tissue(source="live", snr=None, normalize=True).observe(r)
    assert torch.allclose(clean, torch.full_like(r, 1 / 8))


def test_more_blood_is_darker_at_560_and_580nm():
    sim = Tissue(source="live")
    theta = torch.stack([_theta(v_hb=0.01), _theta(v_hb=0.08)])
    res = sim.spectrum(theta, torch.tensor([560.0, 580.0]), photons=3000, generator=torch.Generator().manual_seed(0))
    diff = res.diffuse[0] - res.diffuse[1]
    se = torch.sqrt(res.diffuse_se[0] ** 2 + res.diffuse_se[1] ** 2)
    assert (diff > 4 * se).all()


def test_deoxygenation_lowers_the_560_to_580_ratio():
    # eps_Hb(560) / eps_Hb(580) = 1.45 but eps_HbO2(560) / eps_HbO2(580) = 0.65: deoxygenated blood absorbs
    # relatively more at 560 nm, so R(560) / R(580) drops as sO2 falls
    sim = Tissue(source="live")
    theta = torch.stack([_theta(so2=1.0, v_hb=0.05), _theta(so2=0.0, v_hb=0.05)])
    res = sim.spectrum(theta, torch.tensor([560.0, 580.0]), photons=3000, generator=torch.Generator().manual_seed(1))
    R, S = res.diffuse, res.diffuse_se
    ratio = R[:, 0] / R[:, 1]
    se = ratio * torch.sqrt((S[:, 0] / R[:, 0]) ** 2 + (S[:, 1] / R[:, 1]) ** 2)  # delta method
    assert ratio[0] - ratio[1] > 4 * torch.sqrt(se[0] ** 2 + se[1] ** 2)


def test_bad_options_raise():
    with pytest.raises(ValueError, match="photons"):
        Tissue(photons=1)
    with pytest.raises(ValueError, match="snr"):
        Tissue(snr=-1.0)
    with pytest.raises(ValueError, match="source"):
        Tissue(source="gpu")
    with pytest.raises(ValueError, match=r"\(\*, 13\)"):
        Tissue(source="live").simulate(torch.zeros(2, 12))


# -- table source ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_table(tmp_path_factory):
    path = tmp_path_factory.mktemp("tissue") / "tiny.h5"
    sim = Tissue(source="live", photons=8, snr=None, normalize=False)
    simulators.simulate_table(sim, 12, path, seed=3, chunk_size=6, progress=False)
    return path


def test_table_source_reproduces_the_rows(tiny_table):
    theta_t, r_t, attrs = simulators.read_table(tiny_table)
    raw = Tissue(source="table", table=str(tiny_table), snr=None, normalize=False)
    theta = simulators.sample_prior(raw.prior, (4, 5), generator=torch.Generator().manual_seed(0))
    x = raw.simulate(theta)
    assert x.shape == (4, 5, 8)
    idx = (theta.reshape(-1, 1, 13) == theta_t).all(-1).float().argmax(-1)
    assert torch.equal(x.reshape(-1, 8), r_t[idx])
    # the default observation model on top: normalized and noisy
    noisy = Tissue(source="table", table=str(tiny_table))
    xn = noisy.simulate(theta, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(xn.sum(-1), torch.ones(4, 5), atol=1e-6) and not torch.allclose(xn, x / x.sum(-1, True))
    assert noisy.prior.log_prob(theta).shape == (4, 5)


def test_table_source_simulates_non_rows_live_and_rejects_noisy_tables(tiny_table, tmp_path):
    """lookup() takes table rows only; simulate() re-simulates other parameters (posterior draws) by the table's own
    Monte Carlo at its photon count, with the caller's generator."""
    sim = Tissue(source="table", table=str(tiny_table), snr=None, normalize=False)
    theta = _theta()
    with pytest.raises(ValueError, match="not in the tissue table"):
        sim.lookup(theta)
    g = torch.Generator().manual_seed(3)
    x = sim.simulate(theta, generator=g)
    live = sim.reflectance(theta, generator=torch.Generator().manual_seed(3), photons=sim.table_photons)
    torch.testing.assert_close(x, live.to(x))
    noisy = tmp_path / "noisy.h5"
    simulators.simulate_table(Tissue(source="live", photons=4), 2, noisy, seed=0, progress=False)
    with pytest.raises(ValueError, match="raw tissue reflectance"):
        Tissue(source="table", table=str(noisy))


@pytest.mark.skipif(not (DATA / "tissue_test.h5").exists(), reason="shipped tissue tables not generated yet")
def test_shipped_tables():
    for split, n in (("train", 15_000), ("test", 2_000)):
        theta, r, attrs = simulators.read_table(DATA / f"tissue_{split}.h5")
        assert theta.shape == (n, 13) and r.shape == (n, 8)
        assert attrs["param_names"] == list(PARAM_NAMES)
        assert attrs["options"]["snr"] is None and attrs["options"]["normalize"] is False
        assert ((r > 0) & (r < 1)).all()
        assert TissuePrior().support.check(theta).all()
    sim = simulators.get("tissue", split="test")
    x = sim.simulate(simulators.sample_prior(sim.prior, 10, generator=torch.Generator().manual_seed(0)))
    assert x.shape == (10, 8)


def test_set_valued_tissue_shares_one_reflectance_with_independent_noise():
    sim = simulators.get("tissue", n_obs="1-2000", normalize=False)
    g = torch.Generator().manual_seed(0)
    theta = simulators.sample_prior(sim.prior, 3, generator=g)
    assert sim.obs_shape == (2000, 8) and sim.element_shape == (8,) and sim.options["n_obs"] == [1, 2000]
    assert sim.simulate(theta, n_obs=7, generator=g).shape == (3, 7, 8)
    x = sim.simulate(theta, generator=g)  # default: the top of the range
    r = sim.lookup(theta)
    assert x.shape == (3, 2000, 8)
    assert (x[:, 0] != x[:, 1]).all()  # independent camera noise per element
    # the element mean estimates the shared reflectance: x = r (1 + e / SNR), SE of the mean = r / SNR / sqrt(K)
    se = r / sim.snr / 2000**0.5
    assert ((x.mean(-2) - r).abs() < 4 * se).all()


def test_set_valued_tissue_rejects_bad_set_options():
    with pytest.raises(ValueError, match="needs camera noise"):
        simulators.get("tissue", n_obs=5, snr=None)
    with pytest.raises(ValueError, match="n_obs must be"):
        simulators.get("tissue", n_obs="0-3")
    theta = simulators.sample_prior(simulators.get("tissue").prior, 1, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="only accepted by a set-valued tissue"):
        simulators.get("tissue").simulate(theta, n_obs=3)
