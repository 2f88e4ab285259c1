"""`zoo train --method fmpe` and a cINN distilled from it (`--option teacher=DIR`), through click's CliRunner."""

import pytest
import torch
from click.testing import CliRunner

import inference
from zoo_cli.main import main

LIN2 = ["-s", "gaussian-linear", "--sim-option", "dim=2", "-b", "1000", "-q"]
TINY = ["--option", "hidden=16", "--option", "blocks=1", "--option", "summary_dim=8", "--option", "summary_hidden=16"]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("fmpe") / "teacher"
    r = CliRunner().invoke(main, ["train", *LIN2, "-m", "fmpe", *TINY, "--option", "steps=30", "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out


def test_train_fmpe_then_infer_with_it(teacher, tmp_path):
    est = inference.load(teacher)
    assert est.method == "fmpe" and est.options.train.steps == 30
    r = CliRunner().invoke(
        main, ["infer", "--estimator", str(teacher), "--theta", "0.1,-0.2", "-n", "50", "--no-plots", "-q",
               "--out", str(tmp_path / "post")],
    )  # fmt: skip
    assert r.exit_code == 0, r.output


def test_distill_a_cinn_from_the_teacher(teacher, tmp_path):
    out = tmp_path / "student"
    args = ["train", *LIN2, "-m", "cinn", "--option", f"teacher={teacher}", "--option", "teacher_draws=2"]
    args += ["--option", "steps=30", "--option", "restarts=1", "--option", "blocks=2", "--out", str(out)]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    student = inference.load(out)
    assert student.method == "cinn" and student.options.teacher == str(teacher)
    assert student.posterior(torch.zeros(2)).sample(3).shape == (3, 2)


@pytest.mark.parametrize(
    ("sim", "match"),
    [
        (["-s", "arm"], "was trained for gaussian-linear"),
        (["-s", "gaussian-linear", "--sim-option", "dim=2"], None),
    ],
)
def test_a_wrong_teacher_is_a_one_line_error_and_writes_nothing(teacher, tmp_path, sim, match):
    out = tmp_path / "student"
    bad = str(teacher) if match else str(tmp_path / "nowhere")
    r = CliRunner().invoke(main, ["train", *sim, "-b", "1000", "-m", "cinn", "--option", f"teacher={bad}", "-q",
                                  "--out", str(out)])  # fmt: skip
    assert r.exit_code == 2, r.output
    assert len(r.output.strip().splitlines()) == 1 and (match or "does not exist") in r.output
    assert not out.exists()
