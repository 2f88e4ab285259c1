"""The crafted files of the fuzz suite (tests/cli/test_fuzz.py): bad observations, tables, results, estimator and
model directories, code-carrying model files, existing outputs and links, written into one folder that the cases of
tests/cli/fuzz_corpus.py name as ``{F}/...``."""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import torch

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "v1"


def write_corpus(folder: Path) -> None:
    """Write every crafted file the cases name into ``folder``."""
    f = folder
    f.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    garbage = rng.bytes(4096)
    (f / "afile").write_text("a plain file, not a folder\n")
    (f / "adir").mkdir()
    for name in ("dangling.npy", "dangling.h5", "dangling"):
        os.symlink(f / "nowhere" / name, f / name)
    np.save(f / "obs.npy", np.array([1.2, 0.3], dtype=np.float32))
    (f / "label.json").write_text(json.dumps([0, 0, 1, 0, 0, 0, 0, 0]))
    np.save(f / "empty.npy", np.zeros((0, 2), np.float32))
    np.save(f / "empty0.npy", np.zeros((0,), np.float32))
    np.save(f / "scalar.npy", np.float32(1.0))
    np.save(f / "strings.npy", np.array(["1.0", "2.0"]))
    np.save(f / "complex.npy", np.array([1 + 2j, 0.5 + 0j]))
    np.save(f / "object.npy", np.array([1.0, None], dtype=object), allow_pickle=True)
    np.save(f / "nan.npy", np.array([np.nan, 0.3]))
    np.save(f / "inf.npy", np.array([np.inf, 0.3]))
    np.save(f / "bool.npy", np.array([True, False]))
    np.save(f / "wrongshape.npy", np.zeros((3, 5), np.float32))
    np.save(f / "datetime.npy", np.array(["2020-01-01", "2021-01-01"], dtype="datetime64[D]"))
    np.save(f / "f16big.npy", np.array([np.inf, 1.0], np.float16))
    np.save(f / "truth-rows.npy", np.zeros((3, 4), np.float32))  # three truths for one observation
    (f / "garbage.npy").write_bytes(garbage)
    (f / "truncated.npy").write_bytes((f / "obs.npy").read_bytes()[:-3])
    (f / "obs.txt").write_text("1.2 0.3\n")
    (f / "image.txt").write_text("1.2 0.3\n")
    (f / "empty.csv").write_text("")
    (f / "text.csv").write_text("a,b\nc,d\n")
    (f / "ragged.csv").write_text("1,2\n3\n")
    (f / "nan.csv").write_text("nan,0.3\n")
    (f / "wide.csv").write_text("1,2,3\n")
    (f / "huge.csv").write_text("1e400,0.3\n")
    (f / "nul.csv").write_bytes(b"1.2,\x000.3\n")
    (f / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (f / "bigint.json").write_text("[" + "9" * 400 + ", 0.3]")
    (f / "bools.json").write_text("[true, 0.3]")
    (f / "nokey.json").write_text('{"y": [1.2, 0.3]}')
    (f / "string.json").write_text('"1.2, 0.3"')
    (f / "invalid.json").write_text("[1.2, 0.3")
    (f / "empty.json").write_text("")
    (f / "garbage.h5").write_bytes(garbage)
    (f / "garbage.npz").write_bytes(garbage)
    (f / "garbage.nc").write_bytes(garbage)
    (f / "empty.nc").write_bytes(b"")
    (f / "notpng.png").write_text("not an image")
    (f / "empty.png").write_bytes(b"")
    np.save(f / "huge-image.npy", np.full((3, 16, 16), 1e30, np.float32))
    np.save(f / "wrong-image.npy", np.zeros((2, 3, 16, 16), np.float32))
    np.save(f / "nan-images.npy", np.full((4, 3, 16, 16), np.nan, np.float32))
    np.save(f / "images.npy", np.random.default_rng(0).uniform(0, 1, (3, 3, 16, 16)).astype(np.float32))
    np.save(f / "grey-images.npy", np.zeros((3, 1, 16, 16), np.float32))
    np.save(f / "big-images.npy", np.zeros((3, 3, 28, 28), np.float32))
    one_nan = np.where(np.eye(16, dtype=bool), np.nan, 0.5).astype(np.float32)
    np.save(f / "one-nan-image.npy", one_nan[None, None].repeat(3, 1))
    np.savez(f / "nox.npz", y=np.zeros((4, 2), np.float32))
    np.savez(f / "object.npz", x=np.array([1.0, None], dtype=object))
    np.savez(f / "mismatch.npz", theta=np.zeros((10, 4), np.float32), x=np.zeros((7, 2), np.float32))
    _tables(f)
    _results(f)
    _user_code(f)
    _estimators(f)
    _models(f)
    _existing_outputs(f)


def _tables(f: Path) -> None:
    import h5py

    import simulators

    sim = simulators.get("arm")
    simulators.simulate_table(sim, 1000, f / "table.h5", seed=0, progress=False)
    data = (f / "table.h5").read_bytes()
    (f / "truncated.h5").write_bytes(data[: len(data) // 2])
    with h5py.File(f / "strings.h5", "w") as h:
        h["x"] = np.array([b"a", b"b"])
        h["theta"] = np.array([b"a", b"b"])
    with h5py.File(f / "nan-table.h5", "w") as h:
        h["theta"] = np.full((300, 4), np.nan, np.float32)
        h["x"] = np.zeros((300, 2), np.float32)
    with h5py.File(f / "empty-table.h5", "w") as h:
        h["theta"] = np.zeros((0, 4), np.float32)
        h["x"] = np.zeros((0, 2), np.float32)


def _results(f: Path) -> None:
    import h5py

    for src, name in (("posterior.nc", "noattrs.nc"), ("calibration.nc", "calibration-noattrs.nc")):
        shutil.copy(FIXTURES / src, f / name)
        with h5py.File(f / name, "a") as h:  # a zoo result whose attributes went missing
            for key in list(h.attrs):
                if key not in ("_NCProperties",):
                    del h.attrs[key]
    with h5py.File(f / "foreign.nc", "w") as h:  # a NetCDF-like HDF5 file that zoo did not write
        h["temperature"] = np.zeros(3)
    data = (FIXTURES / "posterior.nc").read_bytes()
    (f / "truncated.nc").write_bytes(data[: len(data) // 2])
    for i, name in enumerate(("flipped.nc", "flipped2.nc", "flipped3.nc")):
        b = bytearray(data)
        start = len(b) // (3 + i)
        b[start : start + 64] = bytes(255 - x for x in b[start : start + 64])
        (f / name).write_bytes(bytes(b))


def _user_code(f: Path) -> None:
    (f / "syntax.py").write_text("def make(:\n")
    (f / "sim.txt").write_text("def make():\n    return None\n")
    (f / "sim.py").write_text(
        "def returns_int():\n    return 3\n\ndef raises():\n    raise RuntimeError('the user code broke')\n"
    )


def _estimators(f: Path) -> None:
    from safetensors.torch import load_file, save_file

    src = FIXTURES / "estimator-cinn"
    spec = json.loads((src / "estimator.json").read_text())
    weights = load_file(src / "weights.safetensors")

    def make(name: str, *, spec_text: str | None = None, tensors: dict | None = None, raw: bytes | None = None):
        d = f / f"est-{name}"
        d.mkdir()
        if spec_text is not None:
            (d / "estimator.json").write_text(spec_text)
        if raw is not None:
            (d / "weights.safetensors").write_bytes(raw)
        elif tensors is not None:
            save_file(tensors, d / "weights.safetensors")
        return d

    def edited(change) -> str:
        s = json.loads(json.dumps(spec))
        change(s)
        return json.dumps(s)

    text = json.dumps(spec)
    make("empty")
    make("nojson", tensors=weights)
    make("badjson", spec_text="{not json", tensors=weights)
    make("deepjson", spec_text="[" * 100_000 + "]" * 100_000, tensors=weights)
    make("noweights", spec_text=text)
    make("nanweights", spec_text=text, tensors=_nan(weights))
    make("garbageweights", spec_text=text, raw=np.random.default_rng(1).bytes(2048))
    make("emptyweights", spec_text=text, raw=b"")
    make("shapes", spec_text=text, tensors={k: v.reshape(-1)[:1].clone() for k, v in weights.items()})
    make("extratensor", spec_text=text, tensors={**weights, "stowaway": torch.zeros(3)})
    make("blocks", spec_text=edited(lambda s: s["config"]["model"]["flow"].update(blocks=200_000)), tensors=weights)
    make("hidden", spec_text=edited(lambda s: s["config"]["model"]["flow"].update(hidden=2**31)), tensors=weights)
    make("dim", spec_text=edited(lambda s: s["config"].update(dim=10**9)), tensors=weights)
    make("method", spec_text=edited(lambda s: s.update(method="bogus")), tensors=weights)
    make("format", spec_text=edited(lambda s: s.update(format="something-else")), tensors=weights)
    make("version", spec_text=edited(lambda s: s.update(version=999)), tensors=weights)
    usercode = edited(lambda s: s.update(simulator={"kind": "code", "spec": f"{f}/sim.py:raises", "options": {}}))
    make("usercode", spec_text=usercode, tensors=weights)
    header = json.dumps({"w": {"dtype": "F32", "shape": [2**20, 2**20], "data_offsets": [0, 4 * 2**40]}}).encode()
    make("bigheader", spec_text=text, raw=struct.pack("<Q", len(header)) + header)
    d = f / "est-existing"
    shutil.copytree(src, d)


def _nan(tensors: dict) -> dict:
    return {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in tensors.items()}


def _models(f: Path) -> None:
    from safetensors.torch import load_file, save_file

    import zoo

    src = Path(zoo.__file__).parent / "weights" / "color-mnist-ae"
    weights = load_file(src / "model.safetensors")
    zoo_json = json.loads((src / "zoo.json").read_text())
    config = (src / "config.json").read_text()

    def make(name: str, *, zj: dict | None = zoo_json, cfg: str | None = config, tensors=weights, raw=None):
        d = f / f"model-{name}"
        d.mkdir()
        if zj is not None:
            (d / "zoo.json").write_text(json.dumps(zj))
        if cfg is not None:
            (d / "config.json").write_text(cfg)
        if raw is not None:
            (d / "model.safetensors").write_bytes(raw)
        elif tensors is not None:
            save_file(tensors, d / "model.safetensors")

    make("empty", zj=None, cfg=None, tensors=None)
    make("nozoojson", zj=None)
    make("badjson", cfg="{oops")
    make("arch", zj={**zoo_json, "architecture": "zoo.nope"})
    make("role", zj={**zoo_json, "role": "villain"})
    make("version", zj={**zoo_json, "format_version": 999})
    make("noweights", tensors=None)
    make("emptyweights", raw=b"")
    make("garbageweights", raw=np.random.default_rng(2).bytes(2048))
    make("nanweights", tensors=_nan(weights))
    make("shapes", tensors={k: v.reshape(-1)[:1].clone() for k, v in weights.items()})
    make("latent", cfg=json.dumps({**json.loads(config), "latent_dim": 2_000_000_000}))
    make("bigconfig", cfg=json.dumps({**json.loads(config), "width": 10**6}))
    d = f / "model-diffusers-empty"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel", "sample_size": 16, "in_channels": 3}))
    (d / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    _code_files(f)


def _code_files(f: Path) -> None:
    class Tiny(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1)[:, :4]

    torch.jit.save(torch.jit.script(Tiny()), str(f / "scripted.pt"))
    torch.export.save(torch.export.export(Tiny(), (torch.zeros(1, 3, 16, 16),)), str(f / "program.pt2"))
    torch.save(torch.nn.Linear(2, 2), f / "pickle.pt")  # a whole pickled module, not weights


def _existing_outputs(f: Path) -> None:
    for folder, name in (("infer-corner-only", "corner.png"), ("diagnose-md-only", "calibration.md")):
        (f / folder).mkdir()
        (f / folder / name).write_text("the user's own file\n")
    (f / "fiber-png-only").mkdir()
    (f / "fiber-png-only" / "fibers.png").write_text("the user's own file\n")
    (f / "ood-png-only").mkdir()
    (f / "ood-png-only" / "ood_scores.png").write_text("the user's own file\n")
