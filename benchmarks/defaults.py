"""Do the defaults work? The cINN with default options on the arm and on a user's model with an exact posterior.

For each task and budget, trains ``inference.fit(sim, method="cinn", budget=B)`` with *default* options (or
``--option KEY=VALUE`` overrides, for trying candidates) and scores it on held-out simulated test cases
(:func:`simulators.simulate_cases`, test seed 2024, never seen in training):

- calibration error (thesis ch. 4; median over 100 levels of |inlier fraction - level|), N cases x 1000 draws;
- mean re-simulation error ||s(theta_hat) - x_o|| over those draws (noise-free for the arm);
- C2ST (0.5 = indistinguishable) of 1000 draws against 1000 exact posterior draws, on 8 observations, mean and max;
- training seconds, with the number of torch threads.

Tasks: ``arm`` (the built-in arm; exact reference by rejection) and ``lognormal`` (docs/examples/lognormal_linear.py,
a user's module with a LogNormal prior and an exact Gaussian posterior in log space).

Usage:
    python benchmarks/defaults.py [--tasks arm lognormal] [--budgets 10000 100000] [--n-test 1000] [--threads 1]
                                  [--option KEY=VALUE ...] [--seeds 0 [1 ...]]

One row per task, budget and training seed (``--seeds 0 1 2 3 --option restarts=1``: how much single networks vary).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs" / "examples"))  # the user's model lives in their own module

import lognormal_linear  # noqa: E402

import inference  # noqa: E402
import simulators  # noqa: E402
from inference.evaluation import diagnostics  # noqa: E402
from zoo_cli.options import parse_options  # noqa: E402

TEST_SEED = 2024


def task(name: str):
    """(simulator, exact sampler (x_o (N, M), n, generator) -> (n, N, D), noise-free forward model)."""
    if name == "arm":
        arm = simulators.get("arm")

        def exact(x, n, g):
            return arm.reference_posterior(x, n, generator=g)

        return arm, exact, arm.simulate
    if name == "lognormal":
        sim = lognormal_linear.simulator()
        return sim, lambda x, n, g: lognormal_linear.exact_posterior(x, n, generator=g), lognormal_linear.noise_free
    raise ValueError(f"unknown task {name!r}")


def run(name: str, budget: int, options: dict, n_test: int, seed: int, save: str | None = None) -> dict:
    sim, exact, forward = task(name)
    t0 = time.perf_counter()
    est = inference.fit(
        sim,
        method="cinn",
        budget=budget,
        options=options or None,
        progress=False,
        generator=torch.Generator().manual_seed(seed),
    )
    seconds = time.perf_counter() - t0
    if save:
        est.save(Path(save) / f"{name}-{budget}", overwrite=True)
    theta, x = simulators.simulate_cases(sim, n_test, seed=TEST_SEED)
    draws = est.posterior(x).sample(1000, generator=torch.Generator().manual_seed(1))
    calib = diagnostics.calibration_error(draws, theta)
    widths = (calib.inlier - calib.levels[:, None]).mean(0)  # per parameter; > 0: too wide, < 0: too narrow
    width = float(widths.mean())
    resim = float((forward(draws.double()) - x.double()).norm(dim=-1).mean())
    g = torch.Generator().manual_seed(7)
    c2st = []
    for i in range(8):
        ref = exact(x[i : i + 1], 1000, g)[:, 0]
        q = est.posterior(x[i : i + 1]).sample(1000, generator=torch.Generator().manual_seed(100 + i))[:, 0]
        c2st.append(diagnostics.c2st(q.numpy(), ref.numpy()))
    return {
        "task": name,
        "budget": budget,
        "calib": 100 * calib.error,
        "calib_worst": 100 * float(np.max(calib.error_per_parameter)),
        "width": 100 * width,
        "widths": " ".join(f"{100 * w:+.1f}" for w in widths),
        "resim": resim,
        "c2st": float(np.mean(c2st)),
        "c2st_max": float(np.max(c2st)),
        "seconds": seconds,
        "options": est.options,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", nargs="+", default=["arm", "lognormal"])
    p.add_argument("--budgets", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (one row each)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="cINN option (default: none)")
    p.add_argument("--save", default=None, help="save each estimator to SAVE/<task>-<budget>")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    options = parse_options(tuple(a.option))
    print(f"cINN, options {options or 'default'}, {a.n_test} test cases x 1000 draws, {a.threads} thread(s)")
    print(
        "| task | sims | seed | calibration err (worst param) | coverage - level (per parameter) | mean re-sim "
        "| C2ST mean (max), 8 obs | train s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in a.tasks:
        for budget in a.budgets:
            for seed in a.seeds:
                save = None if a.save is None else str(Path(a.save) / f"seed{seed}")
                r = run(name, budget, options, a.n_test, seed, save=save)
                print(
                    f"| {name} | {budget:.0e} | {seed} | {r['calib']:.2f}% ({r['calib_worst']:.2f}%) | "
                    f"{r['width']:+.2f}% ({r['widths']}) | {r['resim']:.4f} | {r['c2st']:.3f} ({r['c2st_max']:.3f}) | "
                    f"{r['seconds']:.0f} |",
                    flush=True,
                )
    tc = r["options"].train
    print(
        f"(defaults in effect: blocks {r['options'].blocks} x {r['options'].hidden}, steps {tc.steps}, "
        f"restarts {tc.restarts}, batch {tc.batch_size})"
    )


if __name__ == "__main__":
    main()
