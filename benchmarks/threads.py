"""How many torch threads should training use? ``zoo train`` timed as a user runs it, for several ``--threads``.

Each row is one ``zoo train`` in a fresh process (so torch's thread pool is set up exactly as on the command line),
with the wall time, the seconds per optimizer step, and the time the command's default number of steps would take
at that rate. ``torch`` in the threads column means ``--threads`` set to what torch picks by itself
(``torch.get_num_threads()`` in a fresh process: the number of physical cores). The load average before each row
is printed too: on a shared machine extra threads cost most when the cores are busy.

Usage:
    python benchmarks/threads.py [--method cinn] [--budget 100000] [--steps 500] [--threads 1 2 torch]
    python benchmarks/threads.py --steps 0        # the full default run (minutes per row)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

DEFAULT_STEPS = {"cinn": 10_000, "inn": 8_000}


def zoo_command() -> list[str]:
    return [str(Path(sys.executable).parent / "zoo")]


def run(method: str, budget: int, steps: int, threads: int, simulator: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [*zoo_command(), "train", "-s", simulator, "--method", method, "--budget", str(budget)]
        cmd += ["--threads", str(threads), "--out", str(Path(tmp) / "est"), "--quiet"]
        if steps:
            cmd += ["--option", f"steps={steps}"]
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", default="cinn", choices=sorted(DEFAULT_STEPS))
    ap.add_argument("--simulator", default="arm")
    ap.add_argument("--budget", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=500, help="optimizer steps per row (0: the method's default)")
    ap.add_argument("--threads", nargs="+", default=["1", "2", "torch"])
    args = ap.parse_args()
    torch_default = torch.get_num_threads()
    full = DEFAULT_STEPS[args.method]
    steps = args.steps or full
    print(f"zoo train -s {args.simulator} --method {args.method} --budget {args.budget}, {steps} steps per row")
    print(f"{os.cpu_count()} CPUs; torch's own default: {torch_default} threads")
    print("| --threads | load avg before | wall s | s / step | default run (projected) |")
    print("|---|---|---|---|---|")
    for t in args.threads:
        n = torch_default if t == "torch" else int(t)
        load = os.getloadavg()[0]
        wall = run(args.method, args.budget, args.steps, n, args.simulator)
        label = f"{n} (torch's default)" if t == "torch" else str(n)
        projected = wall / steps * full
        print(f"| {label} | {load:.2f} | {wall:.0f} | {wall / steps:.3f} | {projected / 60:.1f} min |", flush=True)
    print(
        "(wall time includes start-up, simulation of the budget and the final validation, so short rows project high)"
    )


if __name__ == "__main__":
    main()
