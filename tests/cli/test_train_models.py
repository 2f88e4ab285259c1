"""`zoo train prior|subject`: runs a recipe for a few steps, writes a loadable model, refuses to overwrite."""

from __future__ import annotations

import click
from click.testing import CliRunner

import zoo
from zoo_cli.errors import ZooClickGroup
from zoo_cli.train_models import prior, subject


@click.group(cls=ZooClickGroup)
def train() -> None:
    """The `zoo train` group as the lead's cli/train.py builds it."""


train.add_command(prior)
train.add_command(subject)


def test_train_prior_and_subject(tmp_path):
    r = CliRunner()
    out = tmp_path / "ddpm"
    res = r.invoke(
        train,
        [
            "prior",
            "color-mnist-ddpm",
            "--out",
            str(out),
            "--steps",
            "1",
            "--batch-size",
            "2",
            "--quiet",
            "--device",
            "cpu",
        ],
    )
    assert res.exit_code == 0, res.output
    assert f"wrote {out}" in res.output
    assert zoo.load(out, role="prior").meta["training"]["settings"]["batch_size"] == 2
    res = r.invoke(
        train,
        [
            "subject",
            "color-mnist-ae",
            "--out",
            str(tmp_path / "ae"),
            "--steps",
            "1",
            "--batch-size",
            "2",
            "--quiet",
            "--threads",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output


def test_errors_exit_with_code_2(tmp_path):
    r = CliRunner()
    (tmp_path / "exists").mkdir()
    res = r.invoke(
        train, ["subject", "digits-classifier", "--out", str(tmp_path / "exists"), "--steps", "1", "--quiet"]
    )
    assert res.exit_code == 2 and "exists" in res.output and "--overwrite" in res.output
    res = r.invoke(train, ["prior", "digits-classifier", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "Invalid value" in res.output
    res = r.invoke(train, ["subject", "color-mnist-ae", "--out", str(tmp_path / "y"), "--data", str(tmp_path / "no")])
    assert res.exit_code == 2
