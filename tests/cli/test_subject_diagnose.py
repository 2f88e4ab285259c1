"""``zoo diagnose --subject``: the shipped CNN on held-out color-MNIST digits and OOD sets, a user's labelled .npz
with a .npy OOD set, and one-line refusals."""

from __future__ import annotations

import json

import numpy as np
import torch
from click.testing import CliRunner

import simulators
from zoo_cli.main import main


def run(*args):
    return CliRunner().invoke(main, ["diagnose", *map(str, args)])


def test_the_shipped_classifier(tmp_path):
    r = run("--subject", "digits-classifier", "--n-data", 200, "--ood", "noise,constant", "--out", tmp_path / "c")
    assert r.exit_code == 0, r.output
    s = json.loads((tmp_path / "c" / "classifier.json").read_text())
    assert s["n"] == 200 and s["calibration"]["accuracy"] > 0.9 and set(s["ood"]) == {"noise", "constant"}
    assert s["ood"]["constant"]["auroc_entropy"] > 0.9  # a flat image leaves the CNN undecided
    assert "| noise |" in (tmp_path / "c" / "classifier.md").read_text()
    assert (tmp_path / "c" / "reliability.png").stat().st_size > 0


def test_a_users_labelled_data_and_ood_file(tmp_path):
    cm = simulators.get("color-mnist")
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(len(cm.digits), (60,), generator=g)
    x = cm.simulate(torch.cat([cm.digits[idx].flatten(1), torch.full((60, 3), 0.7)], 1))
    np.savez(tmp_path / "data.npz", x=x.numpy(), y=cm.labels[idx].numpy())
    np.save(tmp_path / "weird.npy", np.random.default_rng(0).uniform(0, 1, (30, 3, 16, 16)).astype(np.float32))
    r = run("--subject", "digits-classifier", "--data", tmp_path / "data.npz", "--ood", tmp_path / "weird.npy",
            "--out", tmp_path / "u")  # fmt: skip
    assert r.exit_code == 0, r.output
    s = json.loads((tmp_path / "u" / "classifier.json").read_text())
    assert s["n"] == 60 and set(s["ood"]) == {"weird"}


def test_bad_input_is_refused_in_one_line(tmp_path):
    np.savez(tmp_path / "wrong.npz", x=np.zeros((4, 1, 16, 16), np.float32), y=np.zeros(4))
    for args in (
        ["--data", tmp_path / "wrong.npz", "--ood", ""],
        ["--ood", "bogus"],
        ["--data", tmp_path / "missing.npz"],
    ):
        r = run("--subject", "digits-classifier", *args, "--out", tmp_path / "o")
        lines = [ln for ln in r.output.splitlines() if ln.strip()]
        assert r.exit_code == 2 and len(lines) == 1 and lines[0].startswith("Error:"), r.output
        assert not (tmp_path / "o").exists()


def test_the_shipped_ib_inn_is_a_subject_for_fibers_and_diagnosis(tmp_path):
    for output in ("latent", "logits"):
        r = CliRunner().invoke(
            main,
            ["fiber", "--subject", "color-mnist-ib-inn", "--output", output, "--prior", "color-mnist-ddpm"]
            + ["--input", "3", "-n", "2", "--steps", "2", "--reference-size", "20", "--out", str(tmp_path / output)],
        )
        assert r.exit_code == 0, r.output
        assert "fiber loss" in r.output
    r = run("--subject", "color-mnist-ib-inn", "--n-data", 100, "--ood", "constant", "--out", tmp_path / "d")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "d" / "classifier.json").read_text())["calibration"]["accuracy"] > 0.9


def test_generative_outputs_need_a_generative_classifier(tmp_path):
    r = CliRunner().invoke(
        main,
        ["fiber", "--subject", "digits-classifier", "--output", "latent", "--prior", "color-mnist-ddpm"]
        + ["--input", "3", "-n", "2", "--steps", "2", "--out", str(tmp_path / "o")],
    )
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code == 2 and len(lines) == 1 and "generative classifier" in lines[0], r.output
