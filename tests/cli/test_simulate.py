"""`zoo simulate` / `zoo list` / `zoo --version` through click's CliRunner, error paths included."""

import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

import simulators
from zoo_cli.main import main


@pytest.fixture
def runner():
    return CliRunner()


def test_version_and_list(runner):
    r = runner.invoke(main, ["--version"])
    assert r.exit_code == 0 and "zoo, version" in r.output
    r = runner.invoke(main, ["list"])
    assert r.exit_code == 0
    for name in simulators.names():
        assert name in r.output


def test_simulate_writes_table_with_provenance(runner, tmp_path):
    out = tmp_path / "arm.h5"
    r = runner.invoke(main, ["simulate", "-s", "arm", "-n", "1000", "--seed", "3", "--out", str(out), "-q"])
    assert r.exit_code == 0, r.output
    assert str(out) in r.output
    with h5py.File(out, "r") as f:
        assert f["theta"].shape == (1000, 4) and f["x"].shape == (1000, 2)
        assert f.attrs["simulator"] == "arm" and f.attrs["seed"] == 3 and f.attrs["complete"]
        assert "zoo_version" in f.attrs and "torch_version" in f.attrs
        theta, x = torch.from_numpy(f["theta"][()]), torch.from_numpy(f["x"][()])
    # the table is consistent with the simulator (the arm is deterministic)
    assert torch.allclose(simulators.get("arm").simulate(theta), x, atol=1e-6)


def test_simulate_with_options(runner, tmp_path):
    out = tmp_path / "gm.h5"
    r = runner.invoke(
        main, ["simulate", "-s", "gaussian-mixture", "--sim-option", "labels=all", "-n", "50", "--out", str(out), "-q"]
    )
    assert r.exit_code == 0, r.output
    _, x, attrs = simulators.read_table(out)
    assert attrs["options"] == {"labels": "all"}
    assert x.shape == (50, 8)


def test_refuses_to_overwrite(runner, tmp_path):
    out = tmp_path / "a.h5"
    out.write_text("precious")
    r = runner.invoke(main, ["simulate", "-s", "arm", "-n", "10", "--out", str(out), "-q"])
    assert r.exit_code == 2 and "--overwrite" in r.output
    assert out.read_text() == "precious"
    r = runner.invoke(main, ["simulate", "-s", "arm", "-n", "10", "--out", str(out), "-q", "--overwrite"])
    assert r.exit_code == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["-s", "nope"], "valid names: arm"),
        (["-s", "arm", "--sim-option", "bogus=1"], "valid options: variant"),
        (["-s", "arm", "--sim-option", "variant=sideways"], "variant must be"),
        (["-s", "arm", "--option", "variant=cumulative"], "takes simulator options as --sim-option"),
        (["-s", "arm", "-n", "0"], "not in the range x>=1"),
    ],
)
def test_bad_input_one_line_exit_2(runner, tmp_path, args, message):
    out = tmp_path / "x.h5"
    r = runner.invoke(main, ["simulate", *args, "--out", str(out), "-q"])
    assert r.exit_code == 2
    assert message in r.output
    errors = [line for line in r.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1
    assert not out.exists()


class _Interrupting:
    """The arm, interrupted (as by a kill) after a number of simulate calls."""

    def __init__(self, calls):
        self.arm = simulators.get("arm")
        self.calls = calls
        for k in ("name", "param_names", "obs_shape", "prior", "options"):
            setattr(self, k, getattr(self.arm, k))

    def simulate(self, theta, *, generator=None):
        if self.calls == 0:
            raise KeyboardInterrupt
        self.calls -= 1
        return self.arm.simulate(theta, generator=generator)


def test_resume_continues_without_duplicates_or_gaps(tmp_path):
    full = simulators.simulate_table(simulators.get("arm"), 1050, tmp_path / "full.h5", seed=5, chunk_size=200)
    out = tmp_path / "resumed.h5"
    with pytest.raises(KeyboardInterrupt):
        simulators.simulate_table(_Interrupting(2), 1050, out, seed=5, chunk_size=200, progress=False)
    part = simulators.table.partial_path(out)
    assert not out.exists() and part.is_dir()
    assert sorted(p.name for p in part.iterdir()) == ["chunk-000000.npz", "chunk-000001.npz", "settings.json"]
    simulators.simulate_table(simulators.get("arm"), 1050, out, seed=5, chunk_size=200, resume=True, progress=False)
    t1, x1, _ = simulators.read_table(full)
    t2, x2, _ = simulators.read_table(out)
    assert torch.equal(t1, t2) and torch.equal(x1, x2)
    assert len(np.unique(t2.numpy(), axis=0)) == 1050


def test_resume_with_different_settings_is_refused(tmp_path):
    out = tmp_path / "r.h5"
    with pytest.raises(KeyboardInterrupt):
        simulators.simulate_table(_Interrupting(1), 500, out, seed=1, chunk_size=100, progress=False)
    with pytest.raises(ValueError, match="cannot resume"):
        simulators.simulate_table(simulators.get("arm"), 500, out, seed=2, chunk_size=100, resume=True)


def test_resume_on_a_finished_table_says_so(runner, tmp_path):
    """--resume on a finished table of the same settings is a no-op that says so (the file is untouched); of other
    settings it is a one-line refusal naming the difference (exit 2, no traceback)."""
    out = tmp_path / "done.h5"
    cmd = ["simulate", "-s", "arm", "-n", "300", "--seed", "1", "--out", str(out), "-q"]
    assert runner.invoke(main, cmd).exit_code == 0
    before = out.stat().st_mtime_ns, out.read_bytes()
    r = runner.invoke(main, [*cmd, "--resume"])
    assert r.exit_code == 0 and "already complete" in r.output and "nothing to resume" in r.output
    assert (out.stat().st_mtime_ns, out.read_bytes()) == before
    r = runner.invoke(main, [*cmd[:6], "2", *cmd[7:], "--resume"])
    assert r.exit_code == 2 and "its seed is 1, this run's is 2" in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1


def test_incomplete_table_is_not_read(tmp_path):
    out = tmp_path / "r.h5"
    with pytest.raises(KeyboardInterrupt):
        simulators.simulate_table(_Interrupting(1), 500, out, seed=1, chunk_size=100, progress=False)
    with pytest.raises(ValueError, match="incomplete"):
        simulators.read_table(simulators.table.partial_path(out))


def test_resume_of_an_unusable_partial_is_a_one_line_error(tmp_path):
    out = tmp_path / "r.h5"
    part = simulators.table.partial_path(out)
    part.write_bytes(b"\x89HDF\r\n\x1a\n truncated")  # an earlier zoo's single-file partial table
    with pytest.raises(ValueError, match="cannot resume .* earlier zoo"):
        simulators.simulate_table(simulators.get("arm"), 100, out, seed=1, chunk_size=50, resume=True)
    part.unlink()
    part.mkdir()
    (part / "settings.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot resume .* settings.json is unreadable"):
        simulators.simulate_table(simulators.get("arm"), 100, out, seed=1, chunk_size=50, resume=True)


def test_resume_recomputes_damaged_chunks_and_removes_stale_temporaries(tmp_path):
    arm = simulators.get("arm")
    full = simulators.simulate_table(arm, 1000, tmp_path / "full.h5", seed=3, chunk_size=200, progress=False)
    out = tmp_path / "t.h5"
    with pytest.raises(KeyboardInterrupt):
        simulators.simulate_table(_Interrupting(4), 1000, out, seed=3, chunk_size=200, progress=False)
    part = simulators.table.partial_path(out)
    chunk = sorted(part.glob("chunk-*.npz"))
    chunk[1].write_bytes(chunk[1].read_bytes()[:300])  # cut off
    np.savez(chunk[2], theta=np.zeros((5, 4), np.float32), x=np.zeros((5, 2), np.float32))  # wrong shape
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True).stdout)
    (part / f".chunk-000001.npz.{dead}.abc.partial").write_bytes(b"half a chunk")  # a killed run, mid-write
    (tmp_path / f".t.h5.{dead}.xyz.partial").write_bytes(b"half a table")  # a killed run, mid-assembly
    simulators.simulate_table(arm, 1000, out, seed=3, chunk_size=200, resume=True, progress=False)
    (t1, x1, _), (t2, x2, _) = simulators.read_table(full), simulators.read_table(out)
    assert torch.equal(t1, t2) and torch.equal(x1, x2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full.h5", "t.h5"]  # nothing left behind


def test_symlinks_at_the_partial_or_output_name_are_never_written_through(tmp_path):
    arm = simulators.get("arm")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    out = tmp_path / "t.h5"
    part = simulators.table.partial_path(out)
    part.symlink_to(victim)
    with pytest.raises(ValueError, match="symbolic link"):
        simulators.simulate_table(arm, 300, out, seed=0, chunk_size=100, resume=True, progress=False)
    simulators.simulate_table(arm, 300, out, seed=0, chunk_size=100, progress=False)  # the link goes, not its target
    assert sorted(p.name for p in victim.iterdir()) == ["keep.txt"] and not part.exists()
    dangling = tmp_path / "u.h5"
    dangling.symlink_to(tmp_path / "elsewhere.h5")  # a link to where a file would be created
    with pytest.raises(FileExistsError, match="--overwrite"):  # the user's link is theirs: not replaced unasked
        simulators.simulate_table(arm, 300, dangling, seed=0, chunk_size=100, progress=False)
    simulators.simulate_table(arm, 300, dangling, seed=0, chunk_size=100, progress=False, overwrite=True)
    assert not (tmp_path / "elsewhere.h5").exists() and not dangling.is_symlink()
    assert simulators.read_table(dangling)[0].shape == (300, 4)


def test_a_diverging_training_run_is_one_line_exit_1(runner, tmp_path):
    """`zoo train` with a learning rate that makes the INN loss non-finite stops with one line, not a traceback."""
    out = tmp_path / "est"
    r = runner.invoke(
        main,
        ["train", "-s", "arm", "-m", "inn", "-b", "2000", "--option", "lr=1e12", "--option", "steps=200"]
        + ["--out", str(out), "-q"],
    )
    assert r.exit_code == 1, r.output
    assert "training diverged" in r.output and "Traceback" not in r.output
    assert len([line for line in r.output.splitlines() if line.startswith("Error")]) == 1
