"""Recipes: every recipe trains (a few steps) into a loadable zoo directory that records how it was made;
training is reproducible under its seed (bitwise: same code, same seed, same single thread)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import zoo
from zoo.recipes import RECIPES, get_recipe, split_digits, train_recipe
from zoo.training import read_checkpoint_meta


@pytest.mark.parametrize("name", list(RECIPES))
def test_recipe_trains_into_a_loadable_directory(tmp_path, name):
    out = train_recipe(name, tmp_path / name, steps=2, batch_size=4, progress=False)
    meta = json.loads((out / "zoo.json").read_text())
    assert meta["training"]["seed"] == RECIPES[name].seed
    assert meta["training"]["settings"]["steps"] == 2
    assert meta["training"]["command"].startswith(f"zoo train {RECIPES[name].role} {name} ")
    m = zoo.load(out, role=RECIPES[name].role)
    assert m.meta["input"]["shape"] == ([3, 16, 16] if RECIPES[name].data == "color-mnist" else [2])
    with pytest.raises(FileExistsError):
        train_recipe(name, out, steps=1, progress=False)


def test_training_is_reproducible_under_the_seed(tmp_path):
    a = train_recipe("digits-classifier", tmp_path / "a", steps=3, batch_size=8, progress=False)
    b = train_recipe("digits-classifier", tmp_path / "b", steps=3, batch_size=8, progress=False)
    c = train_recipe("digits-classifier", tmp_path / "c", steps=3, batch_size=8, seed=1, progress=False)
    wa, wb, wc = (load_file(str(p / "model.safetensors")) for p in (a, b, c))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


def test_split_is_fixed_and_disjoint():
    tr, te = split_digits(1797)
    tr2, te2 = split_digits(1797)
    assert torch.equal(tr, tr2) and torch.equal(te, te2)
    assert len(set(tr.tolist()) & set(te.tolist())) == 0 and len(tr) + len(te) == 1797


def test_unknown_recipe_or_wrong_role():
    with pytest.raises(ValueError, match="no prior recipe 'digits-classifier'"):
        get_recipe("digits-classifier", role="prior")
    with pytest.raises(ValueError, match="no model recipe"):
        get_recipe("nope")


def test_a_continued_run_records_every_invocation(tmp_path):
    out, ckpt = tmp_path / "m", tmp_path / "ckpt"
    train_recipe("digits-classifier", out, steps=2, batch_size=4, checkpoint_dir=ckpt, progress=False, command="first")
    train_recipe(
        "digits-classifier",
        out,
        steps=4,
        batch_size=4,
        checkpoint_dir=ckpt,
        resume=True,
        overwrite=True,
        progress=False,
        command="second",
    )
    t = json.loads((out / "zoo.json").read_text())["training"]
    assert t["command"] == "first && second"
    assert [r["steps"] for r in t["runs"]] == [2, 4]
    assert read_checkpoint_meta(ckpt)["step"] == 4


@pytest.mark.parametrize("name", [n for n in RECIPES if RECIPES[n].data == "color-mnist"])
def test_recipes_train_on_28x28_mnist_files(tmp_path, name):
    import numpy as np

    rng = np.random.default_rng(0)
    x = np.zeros((40, 28, 28), dtype=np.uint8)
    x[:, 6:22, 8:20] = rng.integers(0, 256, (40, 16, 12))  # "digits" inside a clean background ring
    np.savez(tmp_path / "mnist.npz", x_train=x, y_train=np.arange(40) % 10)
    out = train_recipe(name, tmp_path / name, steps=1, batch_size=4, data=tmp_path / "mnist.npz", progress=False)
    m = zoo.load(out, role=RECIPES[name].role)
    assert m.meta["input"]["shape"] == [3, 28, 28]
    assert "--data" in m.meta["training"]["command"]


def test_mixture_recipes_refuse_mnist_files(tmp_path):
    (tmp_path / "mnist.npz").write_bytes(b"")
    with pytest.raises(ValueError, match="draw their points from the simulator"):
        train_recipe("gaussian-mixture-nfpi", tmp_path / "m", steps=1, data=tmp_path / "mnist.npz", progress=False)
