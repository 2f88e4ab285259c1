"""Rejection ABC on the arm: speed, calibration, re-simulation error and C2ST against the exact posterior.

Usage (about 3-5 minutes on 2 CPU cores):

    python benchmarks/abc.py                     # budgets 1e5 and 1e6, 500 test cases
    python benchmarks/abc.py --budgets 1e5 --n-test 200 --threads 1

Prints one table. Rows: ABC in quantile mode at each budget (n draws kept per observation, so the acceptance rate
is q = n / budget). Columns: simulations per second (one observation; and 100 observations scored in one pass),
marginal calibration error (thesis definition, over --n-test simulated test cases), mean / median re-simulation
error over posterior draws, and C2ST accuracy against the arm's exact reference posterior on 8 fixed observations
(0.5 = indistinguishable). The thesis's INN row (table 4.1) is printed beside for orientation; the thesis used ABC
as its ground truth for the arm and reports no ABC row.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

import inference
import simulators
from inference.evaluation.calibration import calibrate
from inference.evaluation.diagnostics import c2st

THESIS = {"method": "INN (thesis table 4.1)", "calib": 0.0096, "resim_mean": 0.0139, "resim_median": 0.0113}


def sims_per_second(est, x_o, n: int, generator, repeats: int = 3) -> float:
    """Best of ``repeats`` timed posterior queries (after one warm-up): the machine is shared, the best run is the
    least disturbed one."""
    est.posterior(x_o).sample(n, generator=generator)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        est.posterior(x_o).sample(n, generator=generator)
        best = min(best, time.perf_counter() - t0)
    return est.budget / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budgets", type=float, nargs="+", default=[1e5, 1e6])
    ap.add_argument("--n-samples", type=int, default=200, help="draws kept per observation")
    ap.add_argument("--n-test", type=int, default=500, help="simulated test cases for calibration")
    ap.add_argument("--n-c2st", type=int, default=8, help="fixed observations for C2ST")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: the shared 2-core machine)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    arm = simulators.get("arm")
    g = torch.Generator().manual_seed(args.seed)
    fixed_theta = simulators.sample_prior(arm.prior, args.n_c2st, generator=g)
    fixed_x = arm.simulate(fixed_theta)
    ref = arm.reference_posterior(fixed_x, 1000, generator=g).numpy()  # (1000, n_c2st, 4), exact
    many_x = arm.simulate(simulators.sample_prior(arm.prior, 100, generator=g))

    rows = []
    for b in args.budgets:
        budget = int(b)
        t0 = time.perf_counter()
        est = inference.fit(arm, method="abc", budget=budget, generator=g, progress=False)
        sps_1 = sims_per_second(est, fixed_x[0], args.n_samples, g)
        sps_100 = sims_per_second(est, many_x, args.n_samples, g)
        rep = calibrate(est, n_test=args.n_test, n_samples=args.n_samples, generator=g, n_resim=args.n_samples)
        est_c2st = inference.fit(
            arm, method="abc", budget=max(budget, 1000 * budget // args.n_samples), generator=g, progress=False
        )
        draws = est_c2st.posterior(fixed_x).sample(1000, generator=g).numpy()
        acc = [c2st(draws[:, i], ref[:, i]) for i in range(args.n_c2st)]
        rows.append(
            {
                "method": f"ABC quantile, {budget:.0e} sims, q={args.n_samples / budget:.0e}",
                "sps_1": sps_1,
                "sps_100": sps_100,
                "calib": rep.error,
                "resim_mean": rep.resimulation_error_mean,
                "resim_median": rep.resimulation_error_median,
                "c2st": float(np.mean(acc)),
                "seconds": time.perf_counter() - t0,
            }
        )

    print(
        f"\nArm (thesis variant), {args.n_test} test cases x {args.n_samples} draws; C2ST: 1000 draws "
        f"(budget scaled to keep q) vs the exact posterior on {args.n_c2st} observations; {args.threads} threads\n"
    )
    head = (
        f"| {'method':<38} | {'sims/s (1 obs)':>14} | {'sims/s (100 obs)':>16} | {'calib. err':>10} | "
        f"{'mean re-sim':>11} | {'median re-sim':>13} | {'C2ST':>5} | {'time':>6} |"
    )
    print(head)
    print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
    for r in rows:
        print(
            f"| {r['method']:<38} | {r['sps_1']:>14.3g} | {r['sps_100']:>16.3g} | {100 * r['calib']:>9.2f}% | "
            f"{r['resim_mean']:>11.4f} | {r['resim_median']:>13.4f} | {r['c2st']:>5.2f} | {r['seconds']:>5.0f}s |"
        )
    t = THESIS
    print(
        f"| {t['method']:<38} | {'':>14} | {'':>16} | {100 * t['calib']:>9.2f}% | {t['resim_mean']:>11.4f} | "
        f"{t['resim_median']:>13.4f} | {'':>5} | {'':>6} |"
    )
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; sims/s are the best of 3")
    se = 0.5 / np.sqrt(args.n_test)
    print(
        f"\nnoise floor of the calibration error with {args.n_test} test cases: inlier fractions have s.e. <= "
        f"{100 * se:.1f}%, so errors below ~{100 * se:.1f}% are indistinguishable from perfect calibration."
    )


if __name__ == "__main__":
    main()
