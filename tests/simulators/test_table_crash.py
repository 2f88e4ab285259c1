"""SIGKILL a real ``simulate_table`` process mid-run, resume it: the table is bitwise the uninterrupted one, and nothing
is left behind. A few kills in the default run, 50 in the ``slow`` run."""

from __future__ import annotations

import random
import subprocess
import sys
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


def _crash_runs(tmp_path: Path, reference, kills: int, seed: int, sigkill_when) -> int:
    rng, killed = random.Random(seed), 0
    for k in range(kills):
        out = tmp_path / f"run{k}" / "t.h5"
        out.parent.mkdir()
        run = [sys.executable, "-c", RUN, str(out)]
        for _ in range(rng.randint(1, 3)):  # one to three kills in a row before the run may finish
            if k % 5 == 4:  # while the final file is being assembled
                ready = lambda out=out: _assembling(out)  # noqa: E731
            else:  # inside the chunk loop, after a random number of finished chunks
                ready = lambda out=out, m=rng.randint(0, N // CHUNK - 1): _chunks(out) >= m  # noqa: E731
            killed += sigkill_when(run, ready, rng.uniform(0, 0.003), timeout=60.0)
        _finish_and_check(out, reference)
    return killed


def test_sigkill_then_resume_is_bitwise_identical(tmp_path, reference, sigkill_when):
    assert _crash_runs(tmp_path, reference, kills=5, seed=0, sigkill_when=sigkill_when) >= 4


@pytest.mark.slow
def test_fifty_sigkills_then_resume_is_bitwise_identical(tmp_path, reference, sigkill_when):
    assert _crash_runs(tmp_path, reference, kills=30, seed=1, sigkill_when=sigkill_when) >= 50
