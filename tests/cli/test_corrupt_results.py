"""Damaged result files never hang ``zoo diagnose`` nor end in a traceback: bytes of the release's result fixtures are
overwritten or bit-flipped at random places (seeded), and each file is read by a real ``zoo diagnose FILE`` process
under a time limit. A damaged file is either refused in one line (exit 2) or, where only numbers were hit (HDF5
keeps no checksum of data), summarized (exit 0). Three files in the default run, 200 in ``-m slow``.
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "v1"
ZOO = [sys.executable, "-c", "from zoo_cli.main import main; main()", "diagnose"]
LIMIT_S = 60


def corrupt(data: bytes, rng: random.Random) -> bytes:
    """``data`` with 1-4 runs of 1-64 bytes overwritten by random bytes or with one bit flipped each."""
    b = bytearray(data)
    for _ in range(rng.choice([1, 1, 2, 4])):
        start, length, flip = rng.randrange(len(b)), rng.choice([1, 2, 4, 8, 64]), rng.random() < 0.5
        for j in range(start, min(len(b), start + length)):
            b[j] = b[j] ^ (1 << rng.randrange(8)) if flip else rng.randrange(256)
    return bytes(b)


def check(seed: int, folder: Path) -> str | None:
    rng = random.Random(seed)
    src = rng.choice(["posterior.nc", "calibration.nc"])
    path = folder / f"damaged-{seed}-{src}"
    path.write_bytes(corrupt((FIXTURES / src).read_bytes(), rng))
    try:
        r = subprocess.run([*ZOO, str(path)], capture_output=True, text=True, timeout=LIMIT_S)
    except subprocess.TimeoutExpired:
        return f"seed {seed} ({src}): still running after {LIMIT_S} s"
    errors = [line for line in r.stderr.splitlines() if line.startswith("Error: ")]
    if "Traceback" in r.stderr or "Exception ignored" in r.stderr:
        return f"seed {seed} ({src}): traceback: {r.stderr.strip().splitlines()[-1][:200]}"
    if r.returncode not in (0, 2) or (r.returncode == 2 and len(errors) != 1):
        return f"seed {seed} ({src}): exit {r.returncode}: {r.stderr.strip()[-200:]}"
    path.unlink()
    return None


def test_a_few_damaged_results_are_refused_or_read(tmp_path):
    problems = [p for seed in range(3) if (p := check(seed, tmp_path))]
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_two_hundred_damaged_results_are_refused_or_read(tmp_path):
    problems = [p for seed in range(1000, 1200) if (p := check(seed, tmp_path))]
    assert not problems, "\n".join(problems)
