"""The method interface: registry, fit / load, versioned estimator directories, and a contract over every method."""

import dataclasses
import json

import pytest
import torch

import inference
import simulators

# Small settings per method so the contract stays fast; methods not listed run with defaults at a tiny budget.
FAST = {
    "abc": {},
    "nuts": {"warmup": 20, "chains": 2},
    "inn": {"steps": 20, "blocks": 2, "hidden": 16, "batch_size": 64, "val_size": 100, "val_every": 0},
    "fmpe": {"steps": 20, "hidden": 16, "blocks": 1, "summary_dim": 8, "summary_hidden": 16, "val_every": 0},
    "cinn": {
        "steps": 20,
        "blocks": 2,
        "hidden": 16,
        "batch_size": 64,
        "summary_dim": 8,
        "summary_hidden": 16,
        "val_every": 0,
    },
}


def test_builtin_methods_registered():
    assert {"abc", "nuts"} <= set(inference.methods())
    with pytest.raises(inference.UnknownMethodError, match="valid methods: .*abc"):
        inference.fit(simulators.get("arm"), method="nope", budget=10)


def test_make_options_reads_none_as_the_string_for_str_fields():
    """``--option summary=none`` arrives as ``None``; a plain-``str`` field takes it as ``"none"``, others keep None."""
    opts = inference.make_options("cinn", {"summary": None, "checkpoint_dir": None})
    assert opts.summary == "none" and opts.train.checkpoint_dir is None


@pytest.mark.parametrize("budget", [0, -5, 1.5, True])
def test_bad_budget(budget):
    with pytest.raises(ValueError, match="budget"):
        inference.fit(simulators.get("arm"), method="abc", budget=budget, progress=False)


@pytest.mark.parametrize("method", inference.methods())
def test_method_contract(method, tmp_path):
    """Every registered method: shapes (n, *batch, D), determinism under a fixed generator, save/load round trip."""
    sim = simulators.get("gaussian-mixture", labels="all")
    opts = inference.make_options(method, FAST.get(method, {}))
    assert dataclasses.is_dataclass(opts)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(opts, dataclasses.fields(opts)[0].name, None)
    est = inference.fit(
        sim, method=method, budget=2000, options=opts, generator=torch.Generator().manual_seed(0), progress=False
    )
    assert est.method == method and est.simulator is sim
    x_o = torch.nn.functional.one_hot(torch.tensor([[1, 3], [5, 7]]), 8).float()  # batch (2, 2)
    post = est.posterior(x_o)
    draws = post.sample(4, generator=torch.Generator().manual_seed(1))
    assert draws.shape == (4, 2, 2, 2) and torch.isfinite(draws).all()
    again = est.posterior(x_o).sample(4, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(draws, again)
    if post.has_log_prob:
        assert post.log_prob(draws).shape == (4, 2, 2)
    path = est.save(tmp_path / method)
    header = json.loads((path / "estimator.json").read_text())
    assert header["format"] == "zoo.estimator" and header["version"] == 1 and header["method"] == method
    loaded = inference.load(path)
    assert loaded.method == method and loaded.options == est.options
    torch.testing.assert_close(loaded.posterior(x_o).sample(4, generator=torch.Generator().manual_seed(1)), draws)
    with pytest.raises(FileExistsError):
        est.save(path)
    est.save(path, overwrite=True)


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        inference.load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="estimator.json is missing"):
        inference.load(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "estimator.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        inference.load(bad)
    (bad / "estimator.json").write_text(json.dumps({"format": "zoo.estimator", "version": 99}))
    with pytest.raises(ValueError, match="version 99"):
        inference.load(bad)
    est = inference.fit(simulators.get("arm"), method="abc", budget=1000, progress=False)
    path = est.save(tmp_path / "abc")
    (path / "weights.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="corrupt"):
        inference.load(path)


def test_register_method_rejects_duplicates_and_non_dataclasses():
    spec = inference.method_spec("abc")
    with pytest.raises(ValueError, match="already registered"):
        inference.register_method("abc", spec.fit_fn, spec.load_fn, spec.options_cls)
    with pytest.raises(ValueError, match="dataclass"):
        inference.register_method("abc-copy", spec.fit_fn, spec.load_fn, dict)
