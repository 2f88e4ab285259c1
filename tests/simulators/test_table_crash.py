"""SIGKILL a real ``simulate_table`` process mid-run, resume it: the table is bitwise the uninterrupted one, and nothing
is left behind. A few kills in the default run, 50 in the ``slow`` run."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import simulators

N, CHUNK, SEED = 300_000, 10_000, 7
RUN = (
    f"import sys, simulators; simulators.simulate_table(simulators.get('arm'), {N}, sys.argv[1], seed={SEED}, "
    f"chunk_size={CHUNK}, resume=True, progress=False)"
)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    path = tmp_path_factory.mktemp("reference") / "ref.h5"
    simulators.simulate_table(simulators.get("arm"), N, path, seed=SEED, chunk_size=CHUNK, progress=False)
    theta, x, _ = simulators.read_table(path)
    return theta, x


def _kill_when(out: Path, ready, rng: random.Random, timeout: float = 60.0) -> bool:
    """Start the run, SIGKILL it as soon as ``ready()`` holds (plus 0-3 ms); False if it finished first."""
    p = subprocess.Popen([sys.executable, "-c", RUN, str(out)])
    t0 = time.monotonic()
    while p.poll() is None and not ready() and time.monotonic() - t0 < timeout:
        time.sleep(0.0005)
    time.sleep(rng.uniform(0, 0.003))
    if p.poll() is not None:
        return False
    p.send_signal(signal.SIGKILL)
    p.wait()
    return True


def _finish_and_check(out: Path, reference) -> None:
    subprocess.run([sys.executable, "-c", RUN, str(out)], check=True)
    theta, x, attrs = simulators.read_table(out)
    assert torch.equal(theta, reference[0]) and torch.equal(x, reference[1])
    assert attrs["complete"] and attrs["chunks_done"] == N // CHUNK
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no partial folder, no temporaries


def _chunks(out: Path) -> int:
    return len(list(simulators.table.partial_path(out).glob("chunk-*.npz")))


def _assembling(out: Path) -> bool:
    return any(out.parent.glob(f".{out.name}.*.partial"))


def _crash_runs(tmp_path: Path, reference, kills: int, seed: int) -> int:
    rng, killed = random.Random(seed), 0
    for k in range(kills):
        out = tmp_path / f"run{k}" / "t.h5"
        out.parent.mkdir()
        for _ in range(rng.randint(1, 3)):  # one to three kills in a row before the run may finish
            if k % 5 == 4:  # while the final file is being assembled
                hit = _kill_when(out, lambda out=out: _assembling(out), rng)
            else:  # inside the chunk loop, after a random number of finished chunks
                m = rng.randint(0, N // CHUNK - 1)
                hit = _kill_when(out, lambda out=out, m=m: _chunks(out) >= m, rng)
            killed += hit
        _finish_and_check(out, reference)
    return killed


def test_sigkill_then_resume_is_bitwise_identical(tmp_path, reference):
    assert _crash_runs(tmp_path, reference, kills=5, seed=0) >= 4


@pytest.mark.slow
def test_fifty_sigkills_then_resume_is_bitwise_identical(tmp_path, reference):
    assert _crash_runs(tmp_path, reference, kills=30, seed=1) >= 50
