"""sbibm tasks: C2ST of zoo's amortized methods against exact / checked reference posteriors, next to sbibm's.

For each task and simulation budget, every method trains on the *same* simulations and is scored on the same
observations: C2ST (cross-validated accuracy of sbibm's classifier — an MLP of two hidden layers of 10 D units, 5
folds, z-scored — telling ``--draws`` posterior draws from as many reference draws; 0.5 is perfect), averaged over
``--n-obs`` observations drawn from the prior with seed 2025 (zoo's own observations, not sbibm's stored files, so the
published numbers compare as averages). By default the classifier stops on a 10% validation split (~4x faster in
10-D); ``--sbibm-classifier`` trains it as sbibm does, without early stopping.

Methods: ``fmpe`` and ``cinn`` with their defaults (what a user gets without options), and, where sbi is installed in
the same environment, ``sbi-npe`` (NPE, MAF) and ``sbi-fmpe`` trained on the same simulations. The last columns are
sbibm's published NPE and REJ-ABC means (``main_paper.csv``, 10 observations).

    python benchmarks/sbibm.py --budgets 1000 10000 --methods fmpe cinn
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import inference
import simulators
from inference.evaluation.diagnostics import c2st

TASKS = ("two-moons", "gaussian-linear", "gaussian-linear-uniform", "slcp", "bernoulli-glm")
PUBLISHED = {  # sbibm main_paper.csv means over 10 observations: NPE, REJ-ABC at 1e3 / 1e4 / 1e5
    "two-moons": ((0.725, 0.606, 0.542), (0.960, 0.847, 0.664)),
    "slcp": ((0.975, 0.901, 0.831), (0.982, 0.973, 0.961)),
    "gaussian-linear": ((0.694, 0.552, 0.506), (0.913, 0.858, 0.802)),
}
BUDGETS = (1_000, 10_000, 100_000)


def observations(sim, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` observations from the prior (seed 2025), in float32 and float64."""
    g = torch.Generator().manual_seed(2025)
    theta = simulators.sample_prior(sim.prior, n, generator=g).double()
    x = sim.simulate(theta, generator=g)
    return x.float(), x


def train(method: str, sim, theta: torch.Tensor, x: torch.Tensor, seed: int):
    """A sampler ``(x (N, *obs), n) -> (n, N, D)`` of ``method`` trained on (theta, x)."""
    if method in ("fmpe", "cinn"):
        est = inference.fit(
            sim, method=method, simulations=(theta, x), generator=torch.Generator().manual_seed(seed), progress=False
        )
        return lambda xs, n: est.posterior(xs).sample(n, generator=torch.Generator().manual_seed(seed + 1))
    import sbi.inference as si
    from sbi.utils import BoxUniform

    prior = sim.prior
    if hasattr(prior, "base_dist") and type(prior.base_dist).__name__ == "Uniform":
        prior = BoxUniform(prior.base_dist.low, prior.base_dist.high)
    torch.manual_seed(seed)  # sbi draws from torch's global generator; this script seeds it
    trainer = si.NPE(prior=prior, density_estimator="maf") if method == "sbi-npe" else si.FMPE(prior=prior)
    trainer.append_simulations(theta, x).train(show_train_summary=False)
    posterior = trainer.build_posterior()
    return lambda xs, n: posterior.sample_batched((n,), x=xs, show_progress_bars=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--budgets", type=int, nargs="+", default=list(BUDGETS))
    methods = ["fmpe", "cinn", "sbi-npe", "sbi-fmpe"]
    parser.add_argument("--methods", nargs="+", default=methods[:2], choices=methods)
    parser.add_argument("--n-obs", type=int, default=10, help="observations per task (sbibm: 10)")
    parser.add_argument("--draws", type=int, default=10_000, help="posterior and reference draws per C2ST (sbibm: 1e4)")
    parser.add_argument("--sbibm-classifier", action="store_true", help="no early stopping, as sbibm")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulations and of training")
    parser.add_argument("--floor", action="store_true", help="also C2ST of two independent reference sets (obs. 1)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rows = []
    print("task | sims | method | train s | sample s | C2ST mean | C2ST per observation | sbibm NPE | sbibm REJ-ABC")
    print("---|---|---|---|---|---|---|---|---")
    for name in args.tasks:
        sim = simulators.get(name)
        xs, x64 = observations(sim, args.n_obs)
        g = torch.Generator().manual_seed(2026)
        reference = [sim.reference_posterior(x64[i], args.draws, generator=g).float().numpy() for i in range(len(xs))]
        if args.floor:  # what the classifier reports for a perfect posterior
            again = sim.reference_posterior(x64[0], args.draws, generator=g).float().numpy()
            floor = c2st(again, reference[0], early_stopping=not args.sbibm_classifier)
            print(f"{name}: C2ST of two independent reference sets (observation 1): {floor:.3f}", flush=True)
        for budget in args.budgets:
            gs = torch.Generator().manual_seed(args.seed)
            theta = simulators.sample_prior(sim.prior, budget, generator=gs)
            x = sim.simulate(theta, generator=gs)
            for method in args.methods:
                t0 = time.perf_counter()
                sample = train(method, sim, theta, x, args.seed)
                train_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                draws = sample(xs, args.draws)
                sample_s = time.perf_counter() - t0
                scores = [
                    c2st(draws[:, i].numpy(), reference[i], early_stopping=not args.sbibm_classifier)
                    for i in range(len(xs))
                ]
                row = (name, budget, method, train_s, sample_s, float(np.mean(scores)), scores)
                rows.append(row)
                print(_row(*row), flush=True)
    print()
    print(
        f"{args.n_obs} observations per task (seed 2025), {args.draws} draws vs {args.draws} reference draws, "
        f"classifier {'sbibm (no early stopping)' if args.sbibm_classifier else 'early stopping'}, "
        f"{args.threads} threads; simulations seed {args.seed}"
    )
    print("task | sims | method | train s | sample s | C2ST mean | C2ST per observation | sbibm NPE | sbibm REJ-ABC")
    print("---|---|---|---|---|---|---|---|---")
    for row in rows:
        print(_row(*row))


def _row(name, budget, method, train_s, sample_s, mean, scores) -> str:
    npe, rej = PUBLISHED.get(name, (None, None))
    k = BUDGETS.index(budget) if budget in BUDGETS else None
    pub = [f"{v[k]:.3f}" if v is not None and k is not None else "—" for v in (npe, rej)]
    per = " ".join(f"{s:.2f}" for s in scores)
    head = f"{name} | {budget:.0e} | {method} | {train_s:.0f} | {sample_s:.1f}"
    return f"{head} | {mean:.3f} | {per} | {pub[0]} | {pub[1]}"


if __name__ == "__main__":
    main()
