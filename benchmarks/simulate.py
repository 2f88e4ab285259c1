"""Simulations per second for every registered simulator (simulate alone, and prior draw + simulate).

Usage: python benchmarks/simulate.py [--threads N] [--seconds S] [--device cpu]

The batch size grows until one call takes >= 0.2 s, then the best of several repeats is reported. Target for the
arm (issue 2): >= 5e6 simulations per second on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import time

import torch

import simulators


def rate(fn, n: int, repeats: int = 5) -> float:
    fn(n)  # warm-up (allocator, lazy initialisation)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(n)
        best = min(best, time.perf_counter() - t0)
    return n / best


def measure(name: str, device: str, max_seconds: float) -> tuple[int, float, float]:
    sim = simulators.get(name)
    g = torch.Generator(device=device).manual_seed(0)
    n = 64
    while True:
        theta = simulators.sample_prior(sim.prior, n, generator=torch.Generator().manual_seed(0)).to(device)
        t0 = time.perf_counter()
        sim.simulate(theta, generator=g)
        dt = time.perf_counter() - t0
        if dt >= 0.2 or n >= 2**22 or dt * 4 > max_seconds:
            break
        n *= 4
    theta = simulators.sample_prior(sim.prior, n, generator=torch.Generator().manual_seed(0)).to(device)
    repeats = max(2, min(7, int(max_seconds / max(dt, 1e-3))))
    sim_only = rate(lambda k: sim.simulate(theta[:k], generator=g), n, repeats)
    gp = torch.Generator().manual_seed(1)

    def end_to_end(k):
        sim.simulate(simulators.sample_prior(sim.prior, k, generator=gp).to(device), generator=g)

    with_prior = rate(end_to_end, n, repeats)
    return n, sim_only, with_prior


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--seconds", type=float, default=10.0, help="rough time budget per simulator")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, device {args.device}, {args.threads} threads")
    print(f"| {'simulator':<18} | {'batch':>9} | {'simulate /s':>12} | {'prior+simulate /s':>17} | target |")
    print(f"|{'-' * 20}|{'-' * 11}|{'-' * 14}|{'-' * 19}|--------|")
    for name in simulators.names():
        n, a, b = measure(name, args.device, args.seconds)
        target = ">= 5e6" if name == "arm" else ""
        if getattr(simulators.get(name), "options", {}).get("source") == "table":
            target = "table lookup; live MCML: benchmarks/tissue.py"
        print(f"| {name:<18} | {n:>9} | {a:>12.3g} | {b:>17.3g} | {target:<6} |")


if __name__ == "__main__":
    main()
