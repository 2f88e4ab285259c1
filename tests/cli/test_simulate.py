"""`zoo simulate` / `zoo list` / `zoo --version` through click's CliRunner, error paths included."""

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
        (["-s", "arm", "-n", "0"], "positive"),
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
    assert not out.exists() and simulators.table.partial_path(out).exists()
    with h5py.File(simulators.table.partial_path(out), "r") as f:
        assert f.attrs["chunks_done"] == 2
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


def test_resume_of_an_unreadable_partial_is_a_one_line_error(tmp_path):
    out = tmp_path / "r.h5"
    simulators.table.partial_path(out).write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    with pytest.raises(ValueError, match="cannot resume .* unreadable"):
        simulators.simulate_table(simulators.get("arm"), 100, out, seed=1, chunk_size=50, resume=True)


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
