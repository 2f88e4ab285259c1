"""Optical properties of blood-perfused tissue and the multispectral camera (Wirkert et al. 2016).

Absorption by hemoglobin, with molar extinction coefficients eps (cm^-1 / (mol/L)) from Prahl's table::

    mu_a(lambda) = ln(10) * v_hb * c_Hb * (sO2 eps_HbO2(lambda) + (1 - sO2) eps_Hb(lambda)) / 64500   [1/cm]

with c_Hb = 120 g/L and 64 500 g/mol the molar mass of hemoglobin. Mie-type scattering without a Rayleigh term
(Jacques 2013, eq. 2), a_mie being the *reduced* scattering coefficient at 500 nm::

    mu_s'(lambda) = a_mie (lambda / 500 nm)^(-b_mie),    mu_s = mu_s' / (1 - g)                    [1/cm]

The camera folds the reflectance spectrum on the 2 nm grid with a 10 nm wide rectangular window (the grid points
within +-5 nm, equal weights: each point stands for 2 nm) and reads the folded spectrum at the band centres by
linear interpolation. :func:`band_matrix` writes this as one linear map from the grid to the bands.

References:
    S. Wirkert et al. (2016), Robust near real-time estimation of physiological parameters from megapixel
    multispectral images with inverse Monte Carlo and random forest regression, IJCARS 11:909-917.
    S. Prahl, Optical absorption of hemoglobin, omlc.org/spectra/hemoglobin (table shipped in simulators/data).
    S. L. Jacques (2013), Optical properties of biological tissues: a review, Phys. Med. Biol. 58:R37.
"""

from __future__ import annotations

import math
from functools import lru_cache
from importlib.resources import files

import torch

C_HB = 120.0  # g/L, hemoglobin concentration of blood used by Wirkert et al. 2016
M_HB = 64500.0  # g/mol, molar mass of hemoglobin (Prahl)
B_MIE = 1.286  # scattering power, Wirkert et al. colon configuration
BANDS = (470.0, 480.0, 511.0, 560.0, 580.0, 600.0, 660.0, 700.0)  # nm, the thesis's 8 camera bands
GRID = tuple(float(w) for w in range(450, 721, 2))  # nm, the spectral grid of the thesis simulations
WINDOW = 10.0  # nm, width of the rectangular camera window


@lru_cache(maxsize=1)
def _prahl() -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    text = files("simulators.data").joinpath("hemoglobin_extinction_prahl.tsv").read_text()
    rows = [line.split("\t") for line in text.splitlines() if line and not line.startswith(("#", "wavelength"))]
    lam, hbo2, hb = zip(*((float(a), float(b), float(c)) for a, b, c in rows))
    return lam, hbo2, hb


def extinction(wavelengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Molar extinction of oxy- and deoxy-hemoglobin, linearly interpolated in Prahl's table (250-1000 nm).

    Arguments:
        wavelengths: in nm, shape (W,).

    Returns:
        ``(eps_HbO2, eps_Hb)`` in cm^-1 / (mol/L), each shape (W,), on the device and dtype of ``wavelengths``.

    Raises:
        ValueError: for wavelengths outside the table.
    """
    lam, hbo2, hb = (torch.tensor(t, dtype=torch.float64) for t in _prahl())
    w = wavelengths.detach().to("cpu", torch.float64)
    if (w < lam[0]).any() or (w > lam[-1]).any():
        raise ValueError(f"wavelengths must lie in [{lam[0].item():g}, {lam[-1].item():g}] nm (Prahl's table)")
    i = torch.searchsorted(lam, w, right=True).clamp(1, len(lam) - 1)
    t = (w - lam[i - 1]) / (lam[i] - lam[i - 1])
    out = [(1 - t) * e[i - 1] + t * e[i] for e in (hbo2, hb)]
    return tuple(o.to(wavelengths.device, wavelengths.dtype) for o in out)


def absorption(so2: torch.Tensor, v_hb: torch.Tensor, wavelengths: torch.Tensor) -> torch.Tensor:
    """Hemoglobin absorption coefficient mu_a in 1/cm.

    Arguments:
        so2: oxygen saturation in [0, 1], shape (*).
        v_hb: blood volume fraction in [0, 1], shape (*).
        wavelengths: in nm, shape (W,).

    Returns:
        mu_a of shape (*, W).
    """
    eps_o, eps_d = extinction(wavelengths)
    so2, v_hb = so2[..., None], v_hb[..., None]
    return math.log(10.0) * v_hb * C_HB * (so2 * eps_o + (1.0 - so2) * eps_d) / M_HB


def scattering(a_mie: torch.Tensor, g: torch.Tensor, wavelengths: torch.Tensor, b_mie: float = B_MIE) -> torch.Tensor:
    """Scattering coefficient mu_s = a_mie (lambda / 500 nm)^(-b_mie) / (1 - g) in 1/cm.

    Arguments:
        a_mie: reduced scattering at 500 nm in 1/cm, shape (*).
        g: anisotropy, shape (*).
        wavelengths: in nm, shape (W,).
        b_mie: scattering power.

    Returns:
        mu_s of shape (*, W).
    """
    return a_mie[..., None] * (wavelengths / 500.0) ** (-b_mie) / (1.0 - g[..., None])


def band_matrix(
    grid: tuple[float, ...] = GRID, bands: tuple[float, ...] = BANDS, window: float = WINDOW
) -> torch.Tensor:
    """The linear camera map from a reflectance spectrum on ``grid`` to the band readings.

    Folding: each grid point is replaced by the mean over the grid points within +-window/2 (a rectangular
    window sampled on the grid); reading: linear interpolation of the folded spectrum at each band centre.

    Returns:
        a float64 matrix of shape (len(bands), len(grid)) with rows summing to 1.
    """
    g = torch.tensor(grid, dtype=torch.float64)
    fold = ((g[:, None] - g[None, :]).abs() <= window / 2 + 1e-9).double()
    fold = fold / fold.sum(-1, keepdim=True)
    rows = []
    for b in bands:
        if not grid[0] <= b <= grid[-1]:
            raise ValueError(f"band {b} nm lies outside the spectral grid [{grid[0]}, {grid[-1]}] nm")
        i = int(torch.searchsorted(g, torch.tensor(b, dtype=torch.float64), right=True).clamp(1, len(grid) - 1))
        t = (b - grid[i - 1]) / (grid[i] - grid[i - 1])
        rows.append((1 - t) * fold[i - 1] + t * fold[i])
    return torch.stack(rows)
