"""Bounded loading (zoo.bounds): crafted configs and weight headers are refused from the header, in about a second,
without allocating what they ask for; real models pass."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import inference
import zoo
import zoo.estimators
from zoo.bounds import check_sizes, header_shapes

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "v1"


def _raw(path: Path, header: dict, data: bytes = b"") -> Path:
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


def test_headers_that_do_not_fit_their_file_are_refused(tmp_path):
    ok = {"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}
    assert header_shapes(_raw(tmp_path / "ok.safetensors", ok, bytes(16))) == {"w": (2, 2)}
    bad = {
        "terabytes": {"w": {"dtype": "F32", "shape": [2**20, 2**20], "data_offsets": [0, 4 * 2**40]}},
        "outside": {"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}},  # no data behind it
        "mismatch": {"w": {"dtype": "F32", "shape": [3, 3], "data_offsets": [0, 16]}},
        "dtype": {"w": {"dtype": "PICKLE", "shape": [2], "data_offsets": [0, 8]}},
        "negative": {"w": {"dtype": "F32", "shape": [-2, -2], "data_offsets": [0, 16]}},
        "list": [1, 2, 3],
    }
    for name, header in bad.items():
        data = bytes(16) if name in ("mismatch", "dtype", "negative") else b""
        with pytest.raises(ValueError, match=f"{name}.safetensors"):
            header_shapes(_raw(tmp_path / f"{name}.safetensors", header, data))
    (tmp_path / "short.safetensors").write_bytes(struct.pack("<Q", 10**12))
    with pytest.raises(ValueError, match="not a safetensors file"):
        header_shapes(tmp_path / "short.safetensors")


def test_sizes_beyond_the_weights_are_refused_and_real_configs_pass():
    shapes = {"a": (8, 4), "b": (8,)}
    check_sizes({"blocks": 2, "hidden": 8, "seed": 2**31, "clamp": 2.0, "flag": True}, shapes, "cfg")
    for config in ({"blocks": 200_000}, {"model": {"flow": {"hidden": 2**31}}}, {"dims": [2, 10**9]}, {"w": 2e9}):
        with pytest.raises(ValueError, match="larger than anything its weights hold"):
            check_sizes(config, shapes, "cfg")


def test_a_crafted_estimator_cannot_allocate_what_its_config_asks(tmp_path):
    """A cINN config asking for 100,000-wide layers (tens of GB), with a weight file that holds one 100,000-long
    tensor so that the size check alone would pass: the build on the meta device refuses it. Measured in a fresh
    process: the peak memory stays far below one such layer and loading ends within seconds."""
    d = tmp_path / "crafted"
    shutil.copytree(FIXTURES / "estimator-cinn", d)
    spec = json.loads((d / "estimator.json").read_text())
    spec["config"]["model"]["flow"]["hidden"] = 100_000
    (d / "estimator.json").write_text(json.dumps(spec))
    tensors = load_file(d / "weights.safetensors")
    save_file({**tensors, "model.pad": torch.zeros(100_000)}, d / "weights.safetensors")
    code = (
        "import resource, sys, time, inference\nt = time.perf_counter()\n"
        "try:\n    inference.load(sys.argv[1])\nexcept ValueError as e:\n    print('refused:', e)\n"
        "print('seconds', time.perf_counter() - t)\n"
        "print('peak_mb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(d)], capture_output=True, text=True, timeout=120).stdout
    lines = dict(line.split(" ", 1) for line in out.strip().splitlines())
    assert "weights do not match the config" in lines["refused:"], out
    assert float(lines["seconds"]) < 5 and float(lines["peak_mb"]) < 2000, out  # one layer: 100k^2 x 4 B = 40 GB


def test_crafted_model_directories_are_refused_quickly(tmp_path):
    src = Path(zoo.__file__).parent / "weights" / "color-mnist-ae"
    for key, value in (("latent_dim", 2_000_000_000), ("width", 10**6)):
        d = tmp_path / key
        shutil.copytree(src, d)
        config = json.loads((d / "config.json").read_text())
        (d / "config.json").write_text(json.dumps({**config, key: value}))
        t0 = time.perf_counter()
        with pytest.raises(ValueError, match=f"{key} = {value} is larger than anything its weights hold"):
            zoo.load(d, role="subject")
        assert time.perf_counter() - t0 < 2


def test_shipped_estimators_and_models_pass_the_bounds():
    for name in zoo.estimators.names():
        assert inference.load(name).method
    for name in zoo.registry.names():
        assert zoo.load(name) is not None


def test_a_sparse_40_gb_weight_file_is_refused_before_it_is_read(tmp_path):
    """A zoo model directory whose model.safetensors claims one of its tensors is 40 GB (a sparse file, so the header
    fits the file): refused from the header and a build on the meta device, without reading the 40 GB."""
    src = Path(zoo.__file__).parent / "weights" / "color-mnist-ae"
    d = tmp_path / "sparse"
    shutil.copytree(src, d)
    first = next(iter(header_shapes(d / "model.safetensors")))
    n = 10 * 2**30  # float32 elements: 40 GiB
    header = json.dumps({first: {"dtype": "F32", "shape": [n], "data_offsets": [0, 4 * n]}}).encode()
    with (d / "model.safetensors").open("wb") as f:
        f.write(struct.pack("<Q", len(header)) + header)
        f.truncate(8 + len(header) + 4 * n)
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="larger than anything|do not match the config"):
        zoo.load(d, role="subject")
    assert time.perf_counter() - t0 < 2
