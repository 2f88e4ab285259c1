"""A symbolic link planted at an output name is replaced, never written through: estimator folders, zoo model
folders, result files, figures. (Tables: tests/cli/test_simulate.py; checkpoints: tests/zoo/test_training.py.)"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import inference  # noqa: E402
import simulators  # noqa: E402
import zoo  # noqa: E402
import zoo.estimators  # noqa: E402
from inference.plots import save_figures  # noqa: E402


def _victim(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    return victim


def _untouched(victim) -> bool:
    return sorted(p.name for p in victim.iterdir()) == ["keep.txt"] and (victim / "keep.txt").read_text() == "mine"


def test_estimator_and_model_folders_replace_a_linked_folder(tmp_path):
    victim = _victim(tmp_path)
    est = inference.fit(simulators.get("gaussian-mixture"), method="abc", budget=2000, progress=False)
    link = tmp_path / "est"
    link.symlink_to(victim, target_is_directory=True)
    est.save(link, overwrite=True)
    assert _untouched(victim) and link.is_dir() and not link.is_symlink()
    assert inference.load(link).method == "abc"
    model = tmp_path / "model"
    model.symlink_to(victim, target_is_directory=True)
    zoo.save(zoo.load("digits-classifier", role="subject"), model, overwrite=True)
    assert _untouched(victim) and not model.is_symlink() and (model / "zoo.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["est", "model", "victim"]  # nothing set aside left over


def test_result_files_and_figures_replace_a_link(tmp_path):
    victim = _victim(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "posterior.nc").symlink_to(victim / "keep.txt")
    (out / "corner.png").symlink_to(victim / "keep.txt")
    est = inference.load(zoo.estimators.get("arm-cinn").directory)
    theta = torch.tensor([[0.0, 0.3, -0.2, 0.4]])
    result = inference.infer(est, theta=theta, n_samples=50, n_prior=100, n_predictive=50)
    result.save(out / "posterior.nc", overwrite=True)
    fig = plt.figure()
    save_figures({"corner": fig}, out)
    assert _untouched(victim)
    assert not (out / "posterior.nc").is_symlink() and not (out / "corner.png").is_symlink()


def test_temporaries_of_dead_processes_are_removed_and_live_ones_kept(tmp_path):
    import subprocess
    import sys

    from simulators.writes import temporary

    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        target = tmp_path / "posterior.nc"
        dead_file = tmp_path / f".posterior.nc.{int(done.stdout)}.abc.partial"
        dead_dir = tmp_path / f".posterior.nc.{int(done.stdout)}.def.partial"
        live_file = tmp_path / f".posterior.nc.{live.pid}.ghi.partial"
        other = tmp_path / f".other.nc.{int(done.stdout)}.jkl.partial"
        dead_file.write_text("x")
        dead_dir.mkdir()
        live_file.write_text("x")
        other.write_text("x")
        fd, fresh = temporary(target)
        os.close(fd)
        assert not dead_file.exists() and not dead_dir.exists()  # a killed run's leftovers
        assert live_file.exists() and other.exists()  # a running writer's, and another target's
        assert fresh.name.startswith(f".posterior.nc.{os.getpid()}.") and fresh.name.endswith(".partial")
    finally:
        live.kill()
        live.wait()
