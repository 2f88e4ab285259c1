"""Distillation sweep on the arm: which of the student's settings matter, scored like ``benchmarks/vs_sbi.py``.

One FMPE teacher (default: the shipped ``arm-fmpe``), its Euler draws for the vs_sbi seed-0 simulations (1e5) computed
once and cached, and one cINN student per call, trained with the losses of :mod:`inference.posterior.cinn.distill`
(the regression onto the teacher's draws, ``--pull`` times the teacher's pull, ``--ml`` times maximum likelihood),
then scored on the vs_sbi test set (1000 cases x 1000 draws; C2ST on its 8 observations). This is the exploration
behind the ``arm-distilled`` recipe (docs/amortized.md); ``zoo train --option teacher=...`` is the way to train one::

    python -m benchmarks.distill_sweep --steps 10000                 # regression + pull 1 + ML 0.1
    python -m benchmarks.distill_sweep --steps 10000 --pull 0        # without the pull
    python -m benchmarks.distill_sweep --steps 30000 --threads 1
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

import inference
import simulators
from benchmarks.vs_sbi import _test_set, score
from inference.posterior.cinn.distill import distillation_loss, teacher_pairs
from inference.posterior.cinn.method import _fresh_model
from zoo.training import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teacher", default="arm-fmpe", help="an FMPE estimator of the arm (directory or name)")
    parser.add_argument("--draws", type=int, default=10, help="teacher draws per simulation")
    parser.add_argument("--ode-steps", type=int, default=32, help="Euler steps of the teacher's draws")
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--pull", type=float, default=1.0, help="pull_weight")
    parser.add_argument("--pull-time", type=float, default=0.02)
    parser.add_argument("--ml", type=float, default=0.1, help="ml_weight")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", default=tempfile.gettempdir(), help="folder for the teacher's draws")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    arm = simulators.get("arm")
    gs = torch.Generator().manual_seed(0)
    theta = simulators.sample_prior(arm.prior, 100_000, generator=gs)
    x = arm.simulate(theta)
    teacher = inference.load(args.teacher)
    opts = inference.make_options("cinn", {"blocks": args.blocks, "hidden": args.hidden, "restarts": 1})
    g = torch.Generator().manual_seed(1)
    student = _fresh_model(arm, opts, g)
    student.set_standardization(theta, x)
    cache = Path(args.cache) / f"arm-teacher-pairs-{Path(args.teacher).name}-{args.draws}-{args.ode_steps}.pt"
    if cache.exists():
        pairs = torch.load(cache)
    else:
        t0 = time.perf_counter()
        pairs = teacher_pairs(teacher, student, x, args.draws, args.ode_steps, torch.Generator().manual_seed(5), True)
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save(pairs, cache)
        print(f"teacher draws: {time.perf_counter() - t0:.0f} s", flush=True)
    n_val = 5000
    val = torch.arange(len(pairs.index) - n_val, len(pairs.index))
    pulling = teacher if args.pull > 0 else None

    def losses(rows: torch.Tensor) -> dict[str, torch.Tensor]:
        xs = x[pairs.index[rows]]
        return distillation_loss(student, xs, pairs.z[rows], pairs.u[rows], teacher=pulling, pull_time=args.pull_time)

    def batches(step: int) -> tuple[torch.Tensor, torch.Tensor]:  # rows of the pairs, rows of the simulations
        rows = torch.randint(0, len(pairs.index) - n_val, (512,), generator=g)
        return rows, torch.randint(0, len(x), (512,), generator=g)

    def loss_fn(batch: tuple[torch.Tensor, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        rows, j = batch
        parts = losses(rows)
        nll = -student.log_prob(theta[j], x[j]).mean() / student.dim
        total = parts["distill"] + args.pull * parts.get("pull", 0.0) + args.ml * nll
        return {"loss": total, **parts, "nll": nll}

    def val_loss() -> float:
        return float(losses(val)["distill"])

    t0 = time.perf_counter()
    config = TrainConfig(steps=args.steps, batch_size=512, lr=1e-3, schedule="cosine", grad_clip=10.0, val_every=500)
    train(student, loss_fn, batches, config=config, val_loss=val_loss, progress=False, rng=g)
    seconds = time.perf_counter() - t0
    student.eval()

    class Sizes:
        n_test = 1000

    arm, test, reference = _test_set(Sizes)
    s = score(
        lambda xs, n: student.sample(n, xs, generator=torch.Generator().manual_seed(1)),
        arm,
        test,
        n_draws=1000,
        n_test=1000,
        reference=reference,
        repeats=5,
    )
    print("settings | train s | draws/s | calib. err | mean re-sim | C2ST mean / median")
    print(
        f"{args.blocks} x {args.hidden}, {args.steps} steps, pull {args.pull} (t {args.pull_time}), ml {args.ml}, "
        f"{args.draws} Euler-{args.ode_steps} draws | {seconds:.0f} | {s['draws_per_s']:.3g} | "
        f"{s['calibration']:.2f}% | {s['resim']:.4f} | {s['c2st']:.3f} / {s['c2st_median']:.3f}"
    )


if __name__ == "__main__":
    main()
