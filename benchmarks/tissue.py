"""Tissue simulator benchmark: MCML validation, throughput and Monte-Carlo error per camera band.

Prints three tables:

1. the MCML core against the published benchmarks (van de Hulst slab of Wang et al. 1995; the two-layer example of
   the MCML manual), ours +- one Monte-Carlo standard error beside the published number;
2. throughput on each available device: photon steps per second and spectra (8-band tissue observations) per
   second, at the default photon count and at the photon count of the shipped dataset;
3. the relative Monte-Carlo standard error of each band (median and 90th percentile over prior draws), at both
   photon counts, beside the camera noise 1 / SNR = 10 %.

Usage: python benchmarks/tissue.py [--tissues 4] [--threads 1] [--validation-photons 1000000]
"""

from __future__ import annotations

import argparse
import math
import time

import torch

import simulators
from simulators import mcml, optics
from simulators.tissue import Tissue

DATASET_PHOTONS = 128  # photons per wavelength of the shipped tables (docs/simulators/tissue.md)


def validation(photons: int) -> None:
    g = torch.Generator().manual_seed(0)
    one = torch.ones(1)
    vdh = mcml.simulate(10 * one, 90 * one, 0.75 * one, one, 0.02 * one, photons=photons, generator=g)
    two = mcml.simulate(
        torch.tensor([20.0, 10.0]),
        torch.tensor([200.0, 200.0]),
        torch.tensor([0.7, 0.9]),
        torch.tensor([1.3, 1.4]),
        torch.tensor([0.01, math.inf]),
        photons=photons,
        generator=g,
    )
    rows = [
        ("van de Hulst slab", "R_d", 0.09739, vdh.diffuse, vdh.diffuse_se),
        ("van de Hulst slab", "T", 0.66096, vdh.transmittance, vdh.transmittance_se),
        ("two-layer (MCML manual)", "R_sp", 0.0170, two.specular, torch.zeros(())),
        ("two-layer (MCML manual)", "R_d", 0.1050, two.diffuse, two.diffuse_se),
    ]
    print(f"\nMCML validation, {photons} photons")
    print(f"{'case':<26}{'quantity':<10}{'published':>11}{'zoo':>11}{'+- SE':>10}{'(zoo - pub) / SE':>18}")
    for case, q, pub, ours, se in rows:
        z = (ours.item() - pub) / se.item() if se.item() > 0 else float("nan")
        print(f"{case:<26}{q:<10}{pub:>11.5f}{ours.item():>11.5f}{se.item():>10.5f}{z:>18.2f}")
    total = vdh.specular + vdh.diffuse + vdh.transmittance + vdh.absorbed
    print(f"energy, van de Hulst slab: R_sp + R_d + T + A = {total.item():.6f}")


def throughput(device: str, tissues: int, photons: int) -> tuple[float, float, float]:
    sim = Tissue(source="live", photons=photons)
    g = torch.Generator(device=device).manual_seed(1)
    theta = simulators.sample_prior(sim.prior, tissues, generator=g).to(device)
    sim.spectrum(theta[:1], sim.wavelengths, photons=8, generator=g)  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    t0, c0 = time.perf_counter(), time.process_time()
    res = sim.spectrum(theta, sim.wavelengths, generator=g)
    if device == "cuda":
        torch.cuda.synchronize()
    # on a shared CPU, wall time depends on the neighbours: report process CPU time for CPU runs
    dt = time.process_time() - c0 if device == "cpu" else time.perf_counter() - t0
    return res.steps / dt, tissues / dt, res.steps / (tissues * len(sim.wavelengths) * photons)


def band_errors(tissues: int, photons: int) -> tuple[torch.Tensor, torch.Tensor]:
    sim = Tissue(source="live", photons=photons)
    g = torch.Generator().manual_seed(2)
    theta = simulators.sample_prior(sim.prior, tissues, generator=g)
    r, se = sim.reflectance(theta, generator=g, return_se=True)
    rel = se / r
    return rel.median(0).values, rel.quantile(0.9, dim=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tissues", type=int, default=4, help="tissues timed at the default photon count")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--validation-photons", type=int, default=200_000)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    default_photons = simulators.options("tissue")["photons"]

    validation(args.validation_photons)

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(
        f"\nThroughput ({len(optics.BANDS)} bands from 41 simulated wavelengths; CPU threads: {args.threads}; "
        "per CPU-second on CPU, per wall-second on GPU)"
    )
    print(f"{'device':<8}{'photons/wl':>11}{'tissues':>9}{'photon steps/s':>16}{'spectra/s':>11}{'steps/photon':>14}")
    for device in devices:
        for photons, n in ((default_photons, args.tissues), (DATASET_PHOTONS, 25 * args.tissues)):
            steps, spectra, per = throughput(device, n, photons)
            print(f"{device:<8}{photons:>11}{n:>9}{steps:>16.3e}{spectra:>11.3f}{per:>14.1f}")

    print("\nRelative Monte-Carlo standard error per band (over prior draws); camera noise 1/SNR = 10 %")
    names = [f"{int(b)}nm" for b in optics.BANDS]
    print(f"{'photons/wl':<12}{'':<8}" + "".join(f"{n:>8}" for n in names))
    for photons, n in ((default_photons, args.tissues), (DATASET_PHOTONS, 25 * args.tissues)):
        med, q90 = band_errors(n, photons)
        print(f"{photons:<12}{'median':<8}" + "".join(f"{100 * v:>7.2f}%" for v in med.tolist()))
        print(f"{'':<12}{'90%':<8}" + "".join(f"{100 * v:>7.2f}%" for v in q90.tolist()))


if __name__ == "__main__":
    main()
