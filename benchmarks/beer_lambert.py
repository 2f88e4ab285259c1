"""Linear Beer-Lambert unmixing: the sO2 floor every learned tissue method must beat.

On the shipped tissue test table (2 000 simulations), each observation x (8 bands, after the thesis's observation
model: multiplicative noise with SNR 10, then L1-normalization) is turned into absorbance A = -ln x and fitted by
least squares with the band-averaged extinction spectra and an offset::

    A_b ~ c_o eps_HbO2(b) + c_d eps_Hb(b) + c_0          (the offset absorbs normalization and scattering loss)

sO2 is read as c_o / (c_o + c_d), clipped to [0, 1]. The table prints the sO2 RMSE with and without camera noise,
beside the trivial prior-mean predictor (RMSE 1 / sqrt(12) = 0.289 for sO2 ~ U(0, 1)) and the learned methods of
the thesis's Table 4.2 (their data: 10^6 photons per wavelength; ours: see docs/simulators/tissue.md).

Usage: python benchmarks/beer_lambert.py [--table PATH] [--seed 0]
"""

from __future__ import annotations

import argparse
import math

import torch

from simulators import optics
from simulators.tissue import Tissue

THESIS_TABLE_4_2 = {"INN": 0.041, "ABC": 0.036, "cVAE": 0.050, "NN (+Dropout)": 0.057}  # MAP sO2 RMSE


def band_extinction(sim: Tissue) -> torch.Tensor:
    """Extinction of HbO2 and Hb seen by each camera band, shape (8, 2)."""
    eps_o, eps_d = optics.extinction(sim.wavelengths)
    return sim.band_weights @ torch.stack((eps_o, eps_d), -1)


def unmix_so2(x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Least-squares Beer-Lambert sO2 estimate for observations x (N, 8) with band extinctions eps (8, 2)."""
    design = torch.cat((eps / eps.abs().max(), torch.ones(eps.shape[0], 1, dtype=eps.dtype)), -1)  # (8, 3)
    absorbance = -torch.log(x.clamp_min(1e-12))  # (N, 8)
    coef = torch.linalg.lstsq(design, absorbance.T).solution.T  # (N, 3)
    c_o, c_d = coef[:, 0], coef[:, 1]
    return (c_o / (c_o + c_d)).nan_to_num(0.5).clamp(0.0, 1.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", default=None, help="a raw tissue table (default: the shipped test table)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the camera noise")
    args = ap.parse_args()
    torch.set_num_threads(1)

    rows = []
    for snr, label in ((None, "noise-free, L1-normalized"), (10.0, "SNR 10, L1-normalized (thesis data)")):
        sim = Tissue(source="table", split="test", table=args.table, snr=snr, normalize=True)
        theta, r = sim.table_theta.double(), sim.table_reflectance.double()
        x = sim.observe(r, generator=torch.Generator().manual_seed(args.seed))
        est = unmix_so2(x, band_extinction(sim).double())
        err = est - theta[:, 0]
        rmse = err.pow(2).mean().sqrt().item()
        # bootstrap-free SE of the RMSE by the delta method: sd(err^2) / (2 RMSE sqrt(N))
        se = err.pow(2).std().item() / (2 * rmse * math.sqrt(len(err)))
        rows.append((f"Beer-Lambert, {label}", rmse, se))
    n = len(theta)
    rows.append(("prior mean 0.5 (no data)", 1 / math.sqrt(12), float("nan")))

    print(f"\nsO2 RMSE on the tissue test table ({n} simulations)")
    print(f"{'method':<52}{'RMSE':>8}{'+- SE':>8}")
    for name, rmse, se in rows:
        print(f"{name:<52}{rmse:>8.4f}{se:>8.4f}")
    print("thesis Table 4.2 (learned methods, SNR-10 data, MAP sO2 RMSE):")
    for name, v in THESIS_TABLE_4_2.items():
        print(f"  {name:<50}{v:>8.3f}")


if __name__ == "__main__":
    main()
