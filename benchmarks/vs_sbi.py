"""Peer benchmark: zoo's conditional INN against sbi's NPE (MAF) and FMPE (flow matching) on the arm.

All methods train on the *same* simulations of the (noise-free, thesis-variant) arm at each budget and are scored on
the same test set, in one run, by :mod:`inference.evaluation.diagnostics`:

- training seconds;
- posterior draws per second, batched over all test observations in one call;
- marginal calibration error (thesis ch. 4; median over 100 levels of |inlier fraction - level|), N test cases x
  n draws;
- mean re-simulation error ||arm(theta_hat) - x_o|| over all those draws (thesis table 4.1: INN 0.0139);
- C2ST (cross-validated classifier accuracy; 0.5 = indistinguishable) of 1000 draws against 1000 draws of the arm's
  exact reference posterior, on 8 fixed observations, mean and median (the classifier stops early on a validation
  split unless ``--sbibm-classifier``, which trains it as sbibm does).

sbi is not a dependency of zoo: install it into a separate environment and run the script from there, e.g.::

    python -m venv sbi-venv && sbi-venv/bin/pip install torch==2.13.0 \\
        && sbi-venv/bin/pip install -e . sbi
    sbi-venv/bin/python -m benchmarks.vs_sbi --budgets 10000 100000  # from the repository root

``--methods cinn`` runs zoo alone (no sbi needed).
``--estimator DIR_OR_NAME ...`` scores saved zoo estimators (e.g. the shipped ``arm-distilled``, ``arm-cinn``,
``arm-fmpe``) instead of training a cINN per budget, after the training rows; those rows are marked "saved
estimator": each was trained on its own simulations (same simulator, prior and budget, drawn by ``zoo train``), and
its training seconds are the ones recorded in its directory. FMPE samples by
integrating an ODE and is ~100x slower to draw from, so it is scored on ``--slow-test`` cases x ``--slow-draws``
draws (the table says which sizes each row used).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import inference
import simulators
from inference.evaluation import diagnostics
from inference.posterior.cinn import fit_cinn

# the issue's measurements of sbi 0.27 on this machine (1000 test observations x 1000 draws; C2ST on 8 observations)
ISSUE_TABLE = """\
issue's reference (sbi 0.27, this machine)  | sims | train     | draws/s | calib. | mean re-sim  | C2ST
NPE (MAF), 3 seeds                          | 1e4  | 25-40 s   | 4.5e4   | 0.8%   | 0.13-0.27    | 0.92
NPE (MAF), 2 seeds                          | 1e5  | 10-12 min | 4.6e4   | 3.2-6.5% | 0.018-0.048 | 0.61
FMPE (flow matching)                        | 1e5  | 9 min     | 358     | 0.45%  | 0.0199       | 0.50
thesis INN (table 4.1; 1e6 sims)            | 1e6  |           |         | 0.96%  | 0.0139       |"""

CINN_OPTIONS = {"blocks": 12, "hidden": 32, "steps": 10_000, "batch_size": 512, "val_every": 500}
"""The cINN configuration of the peer table (the shipped ``arm-cinn`` is 10 x 32 with 3 restarts, for sampling
speed; zoo/estimators.py records its exact command)."""

SampleFn = Callable[[torch.Tensor, int], torch.Tensor]  # (x (N, 2), n) -> (n, N, 4)


def score(
    sample: SampleFn,
    arm,
    test: tuple[torch.Tensor, torch.Tensor],
    *,
    n_draws: int,
    n_test: int,
    reference: list[torch.Tensor],
    repeats: int = 1,
    early_stopping: bool = True,
) -> dict[str, float]:
    """Draws/s, calibration error, mean re-simulation error and C2ST of one method's batched sampler
    (``early_stopping=False``: sbibm's classifier exactly)."""
    theta, x = test[0][:n_test], test[1][:n_test]
    seconds = float("inf")
    for _ in range(repeats):  # draws/s: the best of `repeats` timed calls (the first one pays for warm-up)
        t0 = time.perf_counter()
        draws = sample(x, n_draws)
        seconds = min(seconds, time.perf_counter() - t0)
    calib = diagnostics.calibration_error(draws, theta).error
    resim = diagnostics.resimulation_error(arm.simulate(draws.double()), x.double()).mean()
    c2sts = []
    for i, ref in enumerate(reference):
        q = sample(test[1][i : i + 1], len(ref))[:, 0]
        c2sts.append(diagnostics.c2st(q.numpy(), ref.numpy(), early_stopping=early_stopping))
    return {
        "draws_per_s": n_draws * n_test / seconds,
        "calibration": 100 * calib,
        "resim": float(resim),
        "c2st": float(np.mean(c2sts)),
        "c2st_median": float(np.median(c2sts)),
        "n_test": n_test,
        "n_draws": n_draws,
    }


def train_cinn(arm, theta, x, seed: int, progress: bool, steps: int | None = None):
    opts = {**CINN_OPTIONS, **({"steps": steps} if steps else {})}
    est = fit_cinn(
        arm,
        budget=len(theta),
        options=inference.make_options("cinn", opts),
        generator=torch.Generator().manual_seed(seed),
        progress=progress,
        simulations=(theta, x),
    )
    return lambda xs, n: est.posterior(xs).sample(n, generator=torch.Generator().manual_seed(seed + 1))


def train_zoo_fmpe(arm, theta, x, seed: int, progress: bool):
    est = inference.fit(
        arm,
        method="fmpe",
        simulations=(theta, x),
        generator=torch.Generator().manual_seed(seed),
        progress=progress,
    )
    return lambda xs, n: est.posterior(xs).sample(n, generator=torch.Generator().manual_seed(seed + 1))


def train_sbi(kind: str, arm, theta, x, seed: int, progress: bool):
    import sbi.inference as si

    prior = torch.distributions.Independent(torch.distributions.Normal(torch.zeros(4), arm.sigma), 1)
    torch.manual_seed(seed)  # sbi draws from torch's global generator; this script, not the library, seeds it
    trainer = si.NPE(prior=prior, density_estimator="maf") if kind == "npe" else si.FMPE(prior=prior)
    trainer.append_simulations(theta, x).train(show_train_summary=False)
    posterior = trainer.build_posterior()

    def sample(xs: torch.Tensor, n: int) -> torch.Tensor:
        return posterior.sample_batched((n,), x=xs, show_progress_bars=progress)

    return sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budgets", type=int, nargs="*", default=[10_000, 100_000], help="none: --estimator only")
    parser.add_argument(
        "--methods", nargs="+", default=["cinn", "zoo-fmpe", "npe", "fmpe"], choices=["cinn", "zoo-fmpe", "npe", "fmpe"]
    )
    parser.add_argument(
        "--estimator", nargs="+", default=[], help="score these saved zoo estimators instead of training a cINN"
    )
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--n-draws", type=int, default=1000)
    parser.add_argument("--slow-test", type=int, default=200, help="test cases for FMPE")
    parser.add_argument("--slow-draws", type=int, default=200, help="draws per case for FMPE")
    parser.add_argument("--threads", type=int, default=2, help="torch threads per job")
    parser.add_argument("--jobs", type=int, default=1, help="train and score this many (method, budget) rows at once")
    parser.add_argument("--speed-repeats", type=int, default=1, help="draws/s: best of this many sampling calls")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulations (and of sbi's training)")
    parser.add_argument(
        "--cinn-seeds",
        type=int,
        nargs="+",
        default=None,
        help="train one cINN per training seed on the same simulations (default: --seed alone)",
    )
    parser.add_argument("--sbibm-classifier", action="store_true", help="C2ST without early stopping, as sbibm")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--cinn-steps", type=int, default=None, help="override the cINN's optimizer steps")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rows = []
    methods = [m for m in args.methods if not (m == "cinn" and args.estimator)]
    cinn_seeds = args.cinn_seeds if args.cinn_seeds is not None else [args.seed]
    tasks = [
        (method, budget, seed)
        for budget in args.budgets
        for method in methods
        for seed in (cinn_seeds if method == "cinn" else [args.seed])
    ]
    if args.jobs > 1 and len(tasks) > 1:
        import concurrent.futures as cf
        import multiprocessing as mp

        # longest first (large budgets), so that the jobs finish together; the table keeps the usual order
        order = sorted(tasks, key=lambda t: -t[1])
        with cf.ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) as pool:
            futures = {t: pool.submit(_task, *t, args) for t in order}
            for t in order:
                print(_row(*futures[t].result()), flush=True)
        rows += [futures[t].result() for t in tasks]
    else:
        for task in tasks:
            rows.append(_task(*task, args))
            print(_row(*rows[-1]), flush=True)

    saved = []  # saved estimators: scored after the training rows (so a run can start while one still trains)
    for source in args.estimator:
        saved.append(_saved(source, args))
        print(_row(*saved[-1]), flush=True)
    rows = saved + rows
    print()
    print(
        f"arm, thesis variant, noise-free; {args.threads} thread(s) per job, {args.jobs} job(s) at once; "
        f"test set seed 2024; simulations seed {args.seed}; cINN training seeds {cinn_seeds}"
    )
    print("method | sims | train s | draws/s batched | calib. err | mean re-sim | C2ST mean, median | test x n")
    print("---|---|---|---|---|---|---|---")
    for method, budget, train_s, s in rows:
        print(_row(method, budget, train_s, s))
    print()
    print(ISSUE_TABLE)


def _saved(source: str, args) -> tuple:
    """Score a saved estimator (FMPE ones on the slow sizes): its row, trained on its own simulations."""
    arm, test, reference = _test_set(args)
    est = inference.load(source)
    slow = est.method == "fmpe"

    def sample(xs: torch.Tensor, n: int) -> torch.Tensor:
        return est.posterior(xs).sample(n, generator=torch.Generator().manual_seed(1))

    s = _score_as_args(sample, arm, test, reference, slow, args)
    label = f"zoo {'FMPE' if slow else 'cINN'} (saved estimator {Path(str(source)).name})"
    return label, est.budget, float(est.info.get("seconds", float("nan"))), s


def _score_as_args(sample: SampleFn, arm, test: tuple, reference: list, slow: bool, args) -> dict[str, float]:
    """:func:`score` with the command line's sizes (the slow ones for ODE samplers), repeats and classifier."""
    return score(
        sample,
        arm,
        test,
        n_draws=args.slow_draws if slow else args.n_draws,
        n_test=min(args.slow_test if slow else args.n_test, args.n_test),
        reference=reference,
        repeats=1 if slow else args.speed_repeats,
        early_stopping=not args.sbibm_classifier,
    )


def _test_set(args) -> tuple:
    """The arm, the test set and the reference posteriors: fixed across methods (seed 2024)."""
    arm = simulators.get("arm")
    g = torch.Generator().manual_seed(2024)
    test_theta = simulators.sample_prior(arm.prior, args.n_test, generator=g)
    test = (test_theta, arm.simulate(test_theta))
    reference = [arm.reference_posterior(test[1][i].double(), 1000, generator=g).float() for i in range(8)]
    return arm, test, reference


def _task(method: str, budget: int, seed: int, args) -> tuple:
    """Train one method on the budget's simulations (seeded by ``--seed``: the same for every method) and score it.

    ``seed`` seeds the training (the cINN's initialization and batches; sbi's global generator).
    """
    torch.set_num_threads(args.threads)
    arm, test, reference = _test_set(args)
    gs = torch.Generator().manual_seed(args.seed)
    theta = simulators.sample_prior(arm.prior, budget, generator=gs)
    x = arm.simulate(theta)
    t0 = time.perf_counter()
    if method == "cinn":
        sample = train_cinn(arm, theta, x, seed, args.progress, args.cinn_steps)
    elif method == "zoo-fmpe":
        sample = train_zoo_fmpe(arm, theta, x, seed, args.progress)
    else:
        sample = train_sbi(method, arm, theta, x, seed, args.progress)
    train_s = time.perf_counter() - t0
    s = _score_as_args(sample, arm, test, reference, method in ("fmpe", "zoo-fmpe"), args)
    label = f"{method} (seed {seed})" if method == "cinn" and args.cinn_seeds else method
    return label, budget, train_s, s


def _row(method: str, budget, train_s: float, s: dict) -> str:
    name = {
        "cinn": "zoo cINN",
        "npe": "sbi NPE (MAF)",
        "fmpe": "sbi FMPE",
        "zoo-fmpe": "zoo FMPE (defaults)",
    }.get(method, method if method.startswith("zoo ") else f"zoo cINN{method[4:]}")
    return (
        f"{name} | {budget:.0e} | {train_s:.0f} | {s['draws_per_s']:.3g} | {s['calibration']:.2f}% | "
        f"{s['resim']:.4f} | {s['c2st']:.3f} / {s['c2st_median']:.3f} | {s['n_test']}x{s['n_draws']}"
    )


if __name__ == "__main__":
    main()
