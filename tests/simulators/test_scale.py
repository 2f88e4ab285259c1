"""Simulation tables on a real Dask cluster (LocalCluster, worker processes): bitwise the one-process table, for a
built-in, a user's one-vector-at-a-time simulator loaded from a file, and after a resume; the CLI's --workers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import simulators
from zoo_cli.main import main

distributed = pytest.importorskip("distributed")
EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        with distributed.Client(c) as cl:
            yield cl


def _same(a: Path, b: Path) -> None:
    (t1, x1, _), (t2, x2, _) = simulators.read_table(a), simulators.read_table(b)
    assert torch.equal(t1, t2) and torch.equal(x1, x2)


@pytest.mark.parametrize("spec, n, chunk", [("arm", 5000, 700), (f"{EXAMPLES / 'oscillator.py'}:simulator", 300, 40)])
def test_a_cluster_writes_the_same_table(tmp_path, client, spec, n, chunk):
    sim = simulators.get(spec)
    local = simulators.simulate_table(sim, n, tmp_path / "local.h5", seed=4, chunk_size=chunk, progress=False)
    remote = simulators.simulate_table(
        sim, n, tmp_path / "remote.h5", seed=4, chunk_size=chunk, progress=False, client=client
    )
    _same(local, remote)


def test_resume_on_a_cluster_continues_a_local_run(tmp_path, client):
    arm = simulators.get("arm")
    full = simulators.simulate_table(arm, 3000, tmp_path / "full.h5", seed=2, chunk_size=500, progress=False)
    out = tmp_path / "t.h5"

    class Interrupting:  # the arm, interrupted after two chunks
        name, param_names, obs_shape, prior, options = arm.name, arm.param_names, arm.obs_shape, arm.prior, arm.options
        calls = 2

        def simulate(self, theta, *, generator=None):
            if self.calls == 0:
                raise KeyboardInterrupt
            self.calls -= 1
            return arm.simulate(theta, generator=generator)

    with pytest.raises(KeyboardInterrupt):
        simulators.simulate_table(Interrupting(), 3000, out, seed=2, chunk_size=500, progress=False)
    simulators.simulate_table(arm, 3000, out, seed=2, chunk_size=500, resume=True, progress=False, client=client)
    _same(full, out)


def test_cli_workers_gives_the_same_table(tmp_path):
    runner = CliRunner()
    base = ["simulate", "-s", "arm", "-n", "2000", "--chunk-size", "300", "-q"]
    assert runner.invoke(main, [*base, "--out", str(tmp_path / "a.h5")]).exit_code == 0
    r = runner.invoke(main, [*base, "--workers", "2", "--out", str(tmp_path / "b.h5")])
    assert r.exit_code == 0, r.output
    _same(tmp_path / "a.h5", tmp_path / "b.h5")
    both = runner.invoke(main, [*base, "--workers", "2", "--scheduler", "tcp://x:1", "--out", str(tmp_path / "c.h5")])
    assert both.exit_code == 2 and "not both" in both.output and not (tmp_path / "c.h5").exists()
    zero = runner.invoke(main, [*base, "--workers", "0", "--out", str(tmp_path / "d.h5")])
    assert zero.exit_code == 2 and "--workers" in zero.output


def test_tissue_live_monte_carlo_is_the_same_with_two_one_or_no_workers(tmp_path):
    """The issue's case: the tissue simulator's live Monte Carlo source (small photon counts to stay fast)."""
    runner = CliRunner()
    base = ["simulate", "-s", "tissue", "--sim-option", "source=live", "--sim-option", "photons=300", "-n", "24"]
    base += ["--chunk-size", "6", "-q"]
    for name, extra in (("none.h5", []), ("one.h5", ["--workers", "1"]), ("two.h5", ["--workers", "2"])):
        r = runner.invoke(main, [*base, *extra, "--out", str(tmp_path / name)])
        assert r.exit_code == 0, r.output
    _same(tmp_path / "none.h5", tmp_path / "one.h5")
    _same(tmp_path / "none.h5", tmp_path / "two.h5")


KILLED = {  # simulator arguments, chunks finished before the kill, delay after that
    "arm": (["-s", "arm", "-n", "400000", "--chunk-size", "20000", "--seed", "6"], 3, 0.0),
    "tissue-live": (
        ["-s", "tissue", "--sim-option", "source=live", "--sim-option", "photons=300", "-n", "24", "--chunk-size", "6"],
        1,
        0.5,
    ),
}


@pytest.mark.parametrize("case", sorted(KILLED))
def test_a_killed_run_resumed_with_two_workers_is_the_same_table(tmp_path, sigkill_when, case):
    import subprocess
    import sys

    args, chunks, delay = KILLED[case]
    zoo = [sys.executable, "-c", "from zoo_cli.main import main; main()", "simulate", *args, "-q"]
    subprocess.run([*zoo, "--out", str(tmp_path / "whole.h5")], check=True, capture_output=True)
    out = tmp_path / "t.h5"
    part = simulators.table.partial_path(out)
    done = lambda: part.is_dir() and len(list(part.glob("chunk-*.npz"))) >= chunks  # noqa: E731
    assert sigkill_when([*zoo, "--out", str(out)], done, delay, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert not out.exists() and part.is_dir()
    r = subprocess.run([*zoo, "--out", str(out), "--resume", "--workers", "2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    _same(tmp_path / "whole.h5", out)
    assert not part.exists()
