"""The bad inputs of the fuzz suite (tests/cli/test_fuzz.py): crafted files and, per command, a valid base invocation
with the kind of every flag, and per kind the values that are wrong for it.

A case is ``(command, flag, value)``: the base invocation of ``command`` with ``flag`` set to ``value`` (added, or
replacing the base's value). Every value here is wrong for its flag, so every case must end in a one-line error, a
non-zero exit and no new or changed files. ``{F}`` in a value is the corpus folder, ``{O}`` a fresh output path.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import torch
from hypothesis import strategies as st

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "v1"
ARM_THETA = "0,0.3,-0.2,0.4"

# command -> (base invocation, {flag: kind}); "" is the positional argument. Bases are cheap when valid (a test runs
# each once), so that a case that is not refused before work starts still ends quickly and is seen as exit 0.
COMMANDS: dict[str, tuple[list[str], dict[str, str]]] = {
    "simulate": (
        ["simulate", "-s", "arm", "-n", "64", "-o", "{O}.h5", "-q"],
        {
            "-s": "simulator",
            "-n": "count",
            "--seed": "seed",
            "-o": "out_file",
            "--sim-option": "arm_sim_option",
            "--option": "any_option",
            "--chunk-size": "count",
            "--device": "device",
            "--workers": "count",
            "--scheduler": "scheduler",
            "--threads": "count",
        },
    ),
    "train": (
        ["train", "-s", "arm", "-m", "cinn", "-b", "1000", "--option", "steps=2", "-o", "{O}", "-q"],
        {
            "-s": "simulator",
            "-m": "method",
            "-b": "count",
            "--option": "cinn_option",
            "--sim-option": "arm_sim_option",
            "--seed": "seed",
            "--threads": "count",
            "-o": "out_dir",
            "--simulations": "table_file",
        },
    ),
    "train-table": (
        ["train", "--simulations", "{F}/table.h5", "-m", "cinn", "--option", "steps=2", "-o", "{O}", "-q"],
        {"--simulations": "table_file", "--theta-key": "key", "--x-key": "key", "--option": "cinn_option"},
    ),
    "train-inn": (
        ["train", "-s", "arm", "-m", "inn", "-b", "600", "--option", "steps=2", "-o", "{O}", "-q"],
        {"--option": "inn_option"},
    ),
    "infer": (
        ["infer", "-s", "arm", "-m", "abc", "-b", "300", "--theta", ARM_THETA, "-n", "20", "--n-resim", "4"]
        + ["--option", "pilot=300", "--no-plots", "-o", "{O}", "-q"],
        {
            "-s": "simulator",
            "-m": "method",
            "--theta": "arm_theta",
            "-n": "count",
            "--n-resim": "count0",
            "-b": "count",
            "--option": "abc_option",
            "--sim-option": "arm_sim_option",
            "--seed": "seed",
            "--test-seed": "seed",
            "--threads": "count",
            "-o": "out_folder",
            "--observation": "observation_file",
            "--estimator": "estimator_dir",
            "--truth": "truth_file",
        },
    ),
    "infer-observation": (
        ["infer", "-s", "arm", "-m", "abc", "-b", "300", "--observation", "{F}/obs.npy", "-n", "20"]
        + ["--n-resim", "4", "--option", "pilot=300", "--no-plots", "-o", "{O}", "-q"],
        {"--observation": "observation_file", "--truth": "truth_file", "--x-key": "key", "--as-set": "flag"},
    ),
    "infer-test": (
        ["infer", "-s", "arm", "-m", "abc", "-b", "300", "--test-index", "1", "-n", "20", "--n-resim", "4"]
        + ["--option", "pilot=300", "-o", "{O}", "-q"],
        {"--test-index": "index", "-o": "existing_infer_out"},
    ),
    "infer-estimator": (
        ["infer", "--estimator", str(FIXTURES / "estimator-cinn"), "--theta", ARM_THETA, "-n", "20"]
        + ["--n-resim", "4", "--no-plots", "-o", "{O}", "-q"],
        {"--estimator": "estimator_dir", "--option": "cinn_option"},
    ),
    "infer-nuts": (
        ["infer", "-s", "gaussian-mixture", "-m", "nuts", "--observation", "{F}/label.json", "-n", "20"]
        + ["--n-resim", "4", "--option", "warmup=20", "--no-plots", "-o", "{O}", "-q"],
        {"--option": "nuts_option", "--sim-option": "gm_sim_option"},
    ),
    "diagnose": (
        ["diagnose", "-s", "gaussian-mixture", "-m", "abc", "-b", "300", "--option", "pilot=300", "--n-test", "4"]
        + ["-n", "20", "--n-resim", "2", "-o", "{O}", "-q"],
        {
            "--n-test": "count2",
            "-n": "count",
            "--n-map": "count0",
            "--n-resim": "count0",
            "--c2st": "count0",
            "--test-seed": "seed",
            "--sim-option": "gm_sim_option",
            "--option": "abc_option",
            "-o": "existing_diagnose_out",
            "--estimator": "estimator_dir",
            "": "result_file",
        },
    ),
    "diagnose-result": (["diagnose", str(FIXTURES / "posterior.nc")], {"": "result_file"}),
    "fiber": (
        ["fiber", "--subject", "digits-classifier", "--prior", "color-mnist-ddpm", "--input", "0", "-n", "2"]
        + ["--steps", "2", "--reference-size", "20", "--out", "{O}"],
        {
            "--subject": "subject",
            "--weights": "weights_file",
            "--layer": "name",
            "--output": "name",
            "--prior": "prior",
            "--input": "image",
            "-n": "count",
            "--option": "ndtm_option",
            "--gamma": "nonneg_float",
            "--steps": "count",
            "--inner-steps": "count",
            "--renoise-until": "unit_float",
            "--refine-steps": "count",
            "--refine-lr": "pos_float",
            "--refine-dim": "count",
            "--reference": "reference",
            "--reference-size": "count",
            "--batch-size": "count",
            "--seed": "seed",
            "--device": "device",
            "--out": "existing_fiber_out",
            "--threads": "count",
        },
    ),
    "fiber-conditional": (
        ["fiber", "--subject", "color-mnist-ae", "--method", "conditional", "--input", "0", "-n", "2"]
        + ["--fm-steps", "2", "--reference-size", "20", "--out", "{O}"],
        {"--fiber-weight": "nonneg_float", "--fm-steps": "count", "--option": "conditional_option"},
    ),
    "train-subject": (
        ["train", "subject", "color-mnist-ae", "--steps", "1", "--batch-size", "4", "--out", "{O}", "--quiet"],
        {
            "": "recipe",
            "--steps": "count",
            "--batch-size": "count",
            "--seed": "seed",
            "--device": "device",
            "--data": "data_file",
            "--checkpoint-dir": "file_not_dir",
            "--threads": "count",
            "--out": "file_not_dir",
        },
    ),
    "check": (["check", "--n", "2", "--steps", "1"], {"--n": "count", "--steps": "count", "--seed": "seed"}),
}

METHODS = ("abc", "cinn", "inn", "nuts")  # posterior methods with a base invocation below (a contract test checks)
FIBER_METHODS = ("ndtm", "conditional")
TOO_BIG = str(2**70)
NOT_INT = ["abc", "2.5", "1e-320", "", "1_000x", "0x10", "nan", "inf", TOO_BIG, "-" + TOO_BIG]

# kind -> the fixed bad values; kinds in GENERATED add values drawn by hypothesis
BAD: dict[str, list[str]] = {
    "count": [*NOT_INT, "0", "-1", "-7"],
    "count0": [*NOT_INT, "-1", "-3"],
    "count2": [*NOT_INT, "0", "1", "-1"],
    "index": [*NOT_INT, "-1"],
    "seed": ["abc", "2.5", "", TOO_BIG, "-" + TOO_BIG, "1e3"],
    "pos_float": ["abc", "nan", "inf", "-inf", "0", "-1", "1e400", ""],
    "nonneg_float": ["abc", "nan", "inf", "-inf", "-1", "-1e-3", "1e400", ""],
    "unit_float": ["abc", "nan", "inf", "-0.5", "1.5", ""],
    "device": ["foo", "cuda", "cuda:3", "gpu", "", "cpu:x", "meta", "mps", "cpu,cpu"],
    "scheduler": ["nonsense", "", "tcp://", "tcp://256.1.1.1:x"],
    "simulator": ["", "bogus", "ARM", "arm ", "{F}/nofile.py:make", "{F}/syntax.py:make", "{F}/sim.py:missing"]
    + ["{F}/sim.py:returns_int", "{F}/sim.py:raises", "no_such_pkg.mod:f", ":", "a:b:c", "{F}/sim.txt:make"],
    "method": ["", "bogus", "CINN", "abc ", "fmpe2"],
    "key": ["nope", "", "x/../theta", "theta,theta"],
    "name": ["", "nope", "no.such.layer", "__class__"],
    "recipe": ["", "nope", "color-mnist-ddpm"],
    "flag": ["on"],  # a flag that is wrong with this base (--as-set for a simulator of single observations)
    "any_option": ["steps=1", "novalue", "=3"],
    "arm_sim_option": ["variant=bogus", "noise_std=-1", "noise_std=nan", "noise_std=inf", "noise_std=abc"]
    + ["n_obs=0", "n_obs=abc", "n_obs=5-2", "n_obs=0-3", "n_obs=1-10000000", "unknown=1", "novalue", "=1"]
    + ["noise_std=true", "variant=3"],
    "gm_sim_option": ["labels=bogus", "labels=3", "labels=none", "unknown=1", "novalue"],
    "arm_theta": ["", "a,b,c,d", "0,0,0", "0,0,0,0,0", "nan,0,0,0", "inf,0,0,0", "1e400,0,0,0", "0;0;0;0", ","]
    + ["0,,0,0", "[0,0,0,0]"],
    "out_file": ["{F}", "{F}/afile/sub.h5", "{F}/table.h5", "{F}/dangling.h5", "{F}/adir/"],
    "out_dir": ["{F}/afile", "{F}/afile/sub", "{F}/est-existing", "{F}/dangling"],
    "out_folder": ["{F}/afile", "{F}/afile/sub", "{F}/dangling"],
    "existing_infer_out": ["{F}/infer-corner-only", "{F}/afile"],
    "existing_diagnose_out": ["{F}/diagnose-md-only", "{F}/afile"],
    "existing_fiber_out": ["{F}/fiber-png-only", "{F}/afile"],
    "file_not_dir": ["{F}/afile", "{F}/afile/sub"],
}

# crafted files, by the kinds that read them
_BAD_ARRAYS = ["empty.npy", "empty0.npy", "scalar.npy", "strings.npy", "complex.npy", "object.npy", "garbage.npy"]
_BAD_ARRAYS += ["nan.npy", "inf.npy", "bool.npy", "wrongshape.npy", "datetime.npy", "truncated.npy", "f16big.npy"]
_MISSING = ["{F}/missing.npy", "{F}/adir", "{F}/dangling.npy", ""]
BAD["observation_file"] = [f"{{F}}/{n}" for n in _BAD_ARRAYS] + _MISSING
BAD["observation_file"] += [f"{{F}}/{n}" for n in ("empty.csv", "text.csv", "ragged.csv", "nan.csv", "wide.csv")]
BAD["observation_file"] += [f"{{F}}/{n}" for n in ("huge.csv", "deep.json", "bigint.json", "bools.json")]
BAD["observation_file"] += [f"{{F}}/{n}" for n in ("nokey.json", "string.json", "invalid.json", "empty.json")]
BAD["observation_file"] += [f"{{F}}/{n}" for n in ("garbage.h5", "truncated.h5", "strings.h5", "garbage.npz")]
BAD["observation_file"] += [f"{{F}}/{n}" for n in ("nox.npz", "object.npz", "obs.txt", "nul.csv")]
BAD["truth_file"] = [f"{{F}}/{n}" for n in ("nan.npy", "strings.npy", "garbage.npy", "wrongshape.npy", "text.csv")]
BAD["truth_file"] += [f"{{F}}/{n}" for n in ("truth-rows.npy", "garbage.h5", "missing.npy")]
BAD["table_file"] = [f"{{F}}/{n}" for n in ("garbage.h5", "truncated.h5", "strings.h5", "garbage.npz", "nox.npz")]
BAD["table_file"] += [f"{{F}}/{n}" for n in ("empty.csv", "text.csv", "nan-table.h5", "empty-table.h5")]
BAD["table_file"] += [f"{{F}}/{n}" for n in ("missing.h5", "obs.txt", "mismatch.npz")]
BAD["table_file"] += ["{F}/adir"]
BAD["estimator_dir"] = [f"{{F}}/est-{n}" for n in ("empty", "nojson", "badjson", "deepjson", "noweights")]
BAD["estimator_dir"] += [f"{{F}}/est-{n}" for n in ("nanweights", "garbageweights", "shapes", "blocks", "hidden")]
BAD["estimator_dir"] += [f"{{F}}/est-{n}" for n in ("method", "format", "version", "emptyweights", "bigheader")]
BAD["estimator_dir"] += [f"{{F}}/est-{n}" for n in ("usercode", "extratensor", "dim")]
BAD["estimator_dir"] += ["{F}/missing", "{F}/afile", "{F}/dangling"]
BAD["result_file"] = [f"{{F}}/{n}" for n in ("garbage.nc", "empty.nc", "truncated.nc", "flipped.nc", "table.h5")]
BAD["result_file"] += [f"{{F}}/{n}" for n in ("flipped2.nc", "flipped3.nc", "missing.nc", "obs.npy", "noattrs.nc")]
BAD["result_file"] += [f"{{F}}/{n}" for n in ("calibration-noattrs.nc", "foreign.nc")]
BAD["result_file"] += ["{F}/adir"]
_MODELS = ("empty", "nozoojson", "badjson", "arch", "role", "noweights", "emptyweights", "nanweights", "latent")
_MODELS += ("garbageweights", "shapes", "diffusers-empty", "version", "bigconfig")
BAD["subject"] = [f"{{F}}/model-{n}" for n in _MODELS] + ["nope", "{F}/scripted.pt", "{F}/program.pt2"]
BAD["subject"] += ["{F}/pickle.pt", "{F}/missing", "color-mnist-ddpm", "os:getcwd", "{F}/afile", ""]
BAD["prior"] = [f"{{F}}/model-{n}" for n in _MODELS] + ["nope", "{F}/scripted.pt", "digits-classifier", ""]
BAD["weights_file"] = ["{F}/garbage.npy", "{F}/missing.safetensors", "{F}/afile"]
BAD["image"] = ["-1", "1000000", "{F}/notpng.png", "{F}/empty.png", "{F}/garbage.npy", "{F}/strings.npy"]
BAD["image"] += ["{F}/nan.npy", "{F}/huge-image.npy", "{F}/wrong-image.npy", "{F}/missing.png", "{F}/afile", ""]
BAD["image"] += ["{F}/complex.npy", "{F}/image.txt"]
BAD["reference"] = ["{F}/garbage.npy", "{F}/nan-images.npy", "{F}/wrongshape.npy", "{F}/empty.npy", "nope"]
BAD["reference"] += ["{F}/missing.npy", ""]
BAD["data_file"] = ["{F}/garbage.npz", "{F}/nox.npz", "{F}/adir", "{F}/afile", "{F}/garbage.npy"]


def option_values(method: str, owner: str = "method") -> list[str]:
    """Bad ``KEY=VALUE`` strings for every option of ``method`` (a posterior or fiber method), from the fields' types,
    plus malformed and unknown keys."""
    import dataclasses
    import typing

    if owner == "method":
        from inference.methods import method_spec

        cls = method_spec(method).options_cls
    else:
        from inference.fibers.registry import fiber_method_spec

        cls = fiber_method_spec(method).options_cls
    out = ["novalue", "=3", "bogus_option=1", "train.bogus=1", "..=1"]

    def walk(c: type, prefix: str) -> None:
        hints = typing.get_type_hints(c)
        for f in dataclasses.fields(c):
            t = hints[f.name]
            if dataclasses.is_dataclass(t):
                walk(t, f"{prefix}{f.name}.")
                continue
            key, kinds = prefix + f.name, str(f.type)
            if key.endswith("checkpoint_dir"):
                out.extend([f"{key}={{F}}/afile", f"{key}={{F}}/afile/sub"])
                continue
            if key.endswith("device"):
                out.extend(f"{key}={d}" for d in ("foo", "cuda:9"))
                continue
            if "tuple" in kinds:
                out.extend(f"{key}={v}" for v in ("abc", "1", "nan"))
            elif "int" in kinds:
                out.extend(f"{key}={v}" for v in ("abc", "2.5", "1e-320", "true", TOO_BIG, "-1", "nan"))
            elif "float" in kinds:
                out.extend(f"{key}={v}" for v in ("abc", "nan", "inf", "-inf", "true", "1e400"))
            elif "bool" in kinds:
                out.extend(f"{key}={v}" for v in ("maybe", "2", "yes please"))
            elif "str" in kinds:
                out.extend(f"{key}={v}" for v in ("bogus-choice", "3"))
        return None

    walk(cls, "")
    return out


# values that are wrong because they are 0 or below where the option needs >= 1 (by name, checked in every class)
_AT_LEAST_ONE = {"steps", "batch_size", "restarts", "blocks", "hidden", "layers", "bins", "summary_dim"}
_AT_LEAST_ONE |= {"summary_hidden", "chains", "pilot", "chunk", "max_tree_depth", "num_steps"}
_AT_LEAST_ONE |= {"inner_steps", "dim_z", "dim_total"}


def _options(method: str, owner: str = "method") -> list[str]:
    values = option_values(method, owner)
    keys = {v.split("=", 1)[0] for v in values if "=" in v}
    values += [f"{k}=0" for k in keys if k.rsplit(".", 1)[-1] in _AT_LEAST_ONE]
    return values


def option_kinds() -> None:
    """Fill the ``*_option`` kinds (imports the library, so called when the suite starts, not at import)."""
    for method in METHODS:
        BAD[f"{method}_option"] = _options(method)
    for method in ("cinn", "inn"):  # the plain names of nested settings, and an overflowing learning rate
        BAD[f"{method}_option"] += ["steps=0", "lr=1e39", "lr=0", "batch_size=0", "restarts=abc"]
    for method in FIBER_METHODS:
        BAD[f"{method}_option"] = _options(method, "fiber")


def cases() -> list[tuple[str, str, str]]:
    """Every fixed case (command, flag, value)."""
    option_kinds()
    return [(c, flag, v) for c, (_, flags) in COMMANDS.items() for flag, kind in flags.items() for v in BAD[kind]]


def generated() -> st.SearchStrategy[tuple[str, str, str]]:
    """Cases with generated values: integers out of range, non-finite or out-of-range floats, text that is no name."""
    option_kinds()
    by_kind: dict[str, st.SearchStrategy[str]] = {
        "count": st.integers(max_value=0).map(str) | st.integers(min_value=2**63).map(str),
        "count0": st.integers(max_value=-1).map(str),
        "count2": st.integers(max_value=1).map(str),
        "seed": st.integers(min_value=2**64).map(str) | st.integers(max_value=-(2**63) - 1).map(str),
        "pos_float": st.floats(max_value=0.0).map(repr) | st.sampled_from(["nan", "inf"]),
        "nonneg_float": st.floats(max_value=-1e-9).map(repr) | st.sampled_from(["nan", "inf"]),
        "unit_float": st.floats(min_value=1.001).map(repr) | st.floats(max_value=-1e-9).map(repr) | st.just("nan"),
        "method": st.text(min_size=1, max_size=12).filter(lambda s: s.strip() not in _method_names()),
        "simulator": st.text(min_size=1, max_size=12).filter(lambda s: ":" not in s and s not in _sim_names()),
        "device": st.text(min_size=1, max_size=8).filter(lambda s: s not in ("cpu", "cuda")),
        "arm_theta": st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=7)
        .filter(lambda v: len(v) != 4)
        .map(lambda v: ",".join(map(repr, v))),
    }
    pairs = [(c, f, k) for c, (_, flags) in COMMANDS.items() for f, k in flags.items() if k in by_kind]
    fixed = st.sampled_from(cases())
    made = st.sampled_from(pairs).flatmap(lambda p: by_kind[p[2]].map(lambda v, p=p: (p[0], p[1], v)))
    return st.one_of(fixed, made)


def _method_names() -> set[str]:
    from inference.methods import methods

    return set(methods())


def _sim_names() -> set[str]:
    import simulators

    return set(simulators.names())


def invocation(command: str, flag: str, value: str, folder: Path, out: Path) -> list[str]:
    """The argument list of a case: the base of ``command`` with ``flag`` set to ``value``."""
    base, _ = COMMANDS[command]
    args = [a.replace("{F}", str(folder)).replace("{O}", str(out)) for a in base]
    value = value.replace("{F}", str(folder)).replace("{O}", str(out))
    if flag == "":  # the positional argument: replace the one the base has, or add it after the command
        if command == "diagnose-result":
            return [args[0], value]
        if command == "train-subject":
            return [*args[:2], value, *args[3:]]
        return [args[0], value, *args[1:]]
    if COMMANDS[command][1][flag] == "flag":
        return [*args, flag]
    if flag in args and flag not in ("--option", "--sim-option"):
        i = args.index(flag)
        return [*args[: i + 1], value, *args[i + 2 :]]
    return [*args, flag, value]


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
