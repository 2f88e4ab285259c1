"""FMPE's sampler: accuracy and speed against the number of ODE steps, on the arm.

One FMPE (defaults) is trained on ``--budget`` simulations of the noise-free arm; its posterior is then drawn with
each solver — fixed-step Euler, midpoint and RK4 at 8, 16 and 32 steps, and the adaptive dopri5 (rtol = atol = 1e-5,
the default) — and scored on the test set of benchmarks/vs_sbi.py: C2ST (median and mean over its 8 observations,
1000 draws against 1000 exact reference draws), mean re-simulation error, and draws/s batched over ``--n-test``
observations (best of ``--repeats`` calls).

    python benchmarks/fmpe_solvers.py --budget 10000
"""

from __future__ import annotations

import argparse
import time
from types import SimpleNamespace

import numpy as np
import torch

import inference
import simulators
from benchmarks.vs_sbi import _test_set
from inference.evaluation import diagnostics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=int, default=10_000)
    parser.add_argument("--estimator", help="a saved FMPE estimator of the arm instead of training one")
    parser.add_argument("--n-test", type=int, default=200, help="observations of the speed and re-simulation runs")
    parser.add_argument("--n-draws", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    arm, test, reference = _test_set(SimpleNamespace(n_test=max(args.n_test, 8)))
    if args.estimator:
        est, train_s = inference.load(args.estimator), float("nan")
    else:
        gs = torch.Generator().manual_seed(args.seed)
        theta = simulators.sample_prior(arm.prior, args.budget, generator=gs)
        t0 = time.perf_counter()
        est = inference.fit(arm, method="fmpe", simulations=(theta, arm.simulate(theta)), generator=gs, progress=False)
        train_s = time.perf_counter() - t0
    print(f"FMPE on the arm, {est.budget} simulations, trained in {train_s:.0f} s; {args.threads} threads")
    print("solver | steps | field evaluations per draw | draws/s | C2ST median | C2ST mean | mean re-sim")
    print("---|---|---|---|---|---|---")
    runs = [(s, k) for s in ("euler", "midpoint", "rk4") for k in (8, 16, 32)] + [("dopri5", None)]
    x = test[1][: args.n_test]
    for solver, steps in runs:
        post = est.posterior(x)
        seconds = float("inf")
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            draws = post.sample(args.n_draws, generator=torch.Generator().manual_seed(1), solver=solver, steps=steps)
            seconds = min(seconds, time.perf_counter() - t0)
        resim = diagnostics.resimulation_error(arm.simulate(draws.double()), x.double()).mean()
        scores = []
        for i, ref in enumerate(reference):
            q = est.posterior(test[1][i]).sample(
                len(ref), generator=torch.Generator().manual_seed(2), solver=solver, steps=steps
            )
            scores.append(diagnostics.c2st(q.numpy(), ref.numpy()))
        evals = {"euler": 1, "midpoint": 2, "rk4": 4}.get(solver, 0) * (steps or 0)
        print(
            f"{solver} | {steps or 'adaptive'} | {evals or 'adaptive (6 per step)'} | "
            f"{args.n_draws * len(x) / seconds:.3g} | {np.median(scores):.3f} | {np.mean(scores):.3f} | {resim:.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
