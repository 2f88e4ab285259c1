"""Scaling on Dask (issue 18): throughput with 1 and 2 local workers against one process, in one run.

Rows: simulations/s of a slow user simulator (``--slow-ms`` ms per call, one parameter vector at a time) and of the
tissue simulator's live Monte Carlo source through ``simulators.simulate_table``; posterior draws/s of ``zoo infer``'s
partitioned pipeline (``inference.batch.infer_batch``, the shipped ``arm-cinn``) over ``--observations``
observations x ``--draws`` draws, with the file size and the time to read one observation back; training steps/s of
``zoo train --nproc 1`` and ``--nproc 2`` (data parallel, torch.distributed with gloo). Each row is a ratio
to the one-process run; workers are ``distributed.LocalCluster`` processes with one thread each, started before the
clock. The machine's core count is printed: on 2 cores two workers can at best double the rate.

    python benchmarks/scale.py                      # the issue's settings (several minutes on 2 cores)
    python benchmarks/scale.py --observations 20000 --draws 200 --slow-n 200   # a quick look
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.distributions import Normal

import simulators
from inference.batch import infer_batch
from inference.results import read_posterior


def slow_model(theta: torch.Tensor, ms: float = 10.0) -> torch.Tensor:
    """One vector at a time, ``ms`` milliseconds of (sleeping) work per call: a stand-in for an external program."""
    time.sleep(ms / 1000)
    return torch.stack([theta.sum(), theta.prod()])


def _slow_simulator(ms: float):
    return simulators.from_function(
        lambda theta: slow_model(theta, ms), Normal(torch.zeros(2), torch.ones(2)), vectorized=False, name="slow"
    )


def _clusters(workers: tuple[int, ...]):
    from distributed import Client, LocalCluster

    for w in workers:
        if w == 0:
            yield 0, None
            continue
        with LocalCluster(n_workers=w, threads_per_worker=1, processes=True, dashboard_address=None) as c:
            with Client(c) as client:
                client.wait_for_workers(w)
                yield w, client


def simulation_rows(name: str, sim, n: int, chunk: int, folder: Path) -> list[tuple[str, int, float]]:
    rows = []
    for w, client in _clusters((0, 1, 2)):
        out = folder / f"{name.split()[0]}-{w}.h5"
        t0 = time.perf_counter()
        simulators.simulate_table(sim, n, out, seed=0, chunk_size=chunk, progress=False, client=client)
        rows.append((name, w, n / (time.perf_counter() - t0)))
    return rows


def posterior_rows(n_obs: int, draws: int, folder: Path) -> tuple[list[tuple[str, int, float]], list[str]]:
    _, x = simulators.simulate_cases(simulators.get("arm"), range(n_obs), seed=11)
    x = x.numpy()
    rows, notes = [], []
    for w, client in _clusters((0, 1, 2)):
        out = folder / f"posterior-{w}.nc"
        t0 = time.perf_counter()
        infer_batch("arm-cinn", x, out, n_samples=draws, seed=0, client=client, progress=False)
        rows.append((f"posterior draws ({n_obs} obs x {draws})", w, n_obs * draws / (time.perf_counter() - t0)))
    t0 = time.perf_counter()
    one = read_posterior(out, observations=n_obs // 2)
    read_s = time.perf_counter() - t0
    draws_bytes = n_obs * draws * one.dim * 4
    notes.append(
        f"file {out.stat().st_size / 2**20:.0f} MiB for {draws_bytes / 2**20:.0f} MiB of float32 draws; "
        f"reading one observation: {read_s:.2f} s"
    )
    return rows, notes


def training_rows(steps: int, budget: int, folder: Path) -> list[tuple[str, int, float]]:
    """Training steps/s of ``zoo train -s arm -m cinn`` (one restart) in 1 and 2 data-parallel processes, from the
    training time the estimator records (process start-up excluded)."""
    import json
    import subprocess
    import sys

    rows = []
    for nproc in (1, 2):
        out = folder / f"cinn-{nproc}"
        cmd = [sys.executable, "-c", "from zoo_cli.main import main; main()", "train", "-s", "arm", "-m", "cinn"]
        cmd += ["-b", str(budget), "--option", f"steps={steps}", "--option", "restarts=1", "-q", "-o", str(out)]
        subprocess.run([*cmd, "--nproc", str(nproc)], check=True, capture_output=True)
        info = json.loads((out / "estimator.json").read_text())["config"]["training"]
        rows.append((f"cinn training steps (batch 512, {budget} sims)", nproc, steps / info["seconds"]))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--observations", type=int, default=20_000)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--slow-ms", type=float, default=10.0)
    ap.add_argument("--slow-n", type=int, default=1000)
    ap.add_argument("--tissue-n", type=int, default=60)
    ap.add_argument("--train-steps", type=int, default=1000)
    ap.add_argument("--parts", default="simulate,posterior,train", help="comma-separated subset to run")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows: list[tuple[str, int, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        notes: list[str] = []
        parts = args.parts.split(",")
        if "simulate" in parts:
            slow = _slow_simulator(args.slow_ms)
            rows += simulation_rows(f"slow user simulator ({args.slow_ms:g} ms/call)", slow, args.slow_n, 50, folder)
            tissue = simulators.get("tissue", source="live", photons=2000)
            rows += simulation_rows("tissue live Monte Carlo", tissue, args.tissue_n, 20, folder)
        if "posterior" in parts:
            post, notes = posterior_rows(args.observations, args.draws, folder)
            rows += post
        if "train" in parts:
            rows += training_rows(args.train_steps, 20_000, folder)
    print(f"\nmachine: {os.cpu_count()} cores; workers are local Dask processes (training: torch.distributed")
    print("processes, gloo), each with one torch thread; 'none' = this process\n")
    print(f"| {'what':<44} | {'workers':>7} | {'per second':>12} | {'vs one process':>14} |")
    print(f"|{'-' * 46}|{'-' * 9}|{'-' * 14}|{'-' * 16}|")
    base = {}
    for what, w, rate in rows:
        base.setdefault(what, rate)
        label = "none" if w == 0 else str(w)
        print(f"| {what:<44} | {label:>7} | {rate:>12.4g} | {rate / base[what]:>13.2f}x |")
    for line in notes:
        print(f"\n{line}")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
