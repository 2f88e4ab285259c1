"""The bad inputs of the fuzz suite (tests/cli/test_fuzz.py): crafted files and, per command, a valid base invocation
with the kind of every flag, and per kind the values that are wrong for it.

A case is ``(command, flag, value)``: the base invocation of ``command`` with ``flag`` set to ``value`` (added, or
replacing the base's value). Every value here is wrong for its flag, so every case must end in a one-line error, a
non-zero exit and no new or changed files. ``{F}`` in a value is the corpus folder, ``{O}`` a fresh output path.
"""

from __future__ import annotations

from pathlib import Path

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
            "--nproc": "count",
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
    "train-fmpe": (
        ["train", "-s", "arm", "-m", "fmpe", "-b", "600", "--option", "steps=2", "-o", "{O}", "-q"],
        {"--option": "fmpe_option"},
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
            "--partition": "count",
            "--workers": "count",
            "--scheduler": "scheduler",
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
            "--input-range": "input_range",
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
    "ood": (
        ["ood", "--prior", "color-mnist-ddpm", "--input", "{F}/images.npy", "--reference-size", "4"]
        + ["--option", "attempts=1", "--option", "num_steps=2", "--out", "{O}"],
        {
            "--prior": "prior",
            "--input": "ood_input",
            "--reference": "reference",
            "--reference-size": "count2",
            "--method": "method",
            "--option": "lmd_option",
            "--alternative": "name",
            "--alpha": "unit_open",
            "--batch-size": "count",
            "--seed": "seed",
            "--device": "device",
            "--out": "existing_ood_out",
            "--threads": "count",
        },
    ),
    "check": (["check", "--n", "2", "--steps", "1"], {"--n": "count", "--steps": "count", "--seed": "seed"}),
}

# posterior methods with a base invocation below (a contract test checks)
METHODS = ("abc", "cinn", "fmpe", "inn", "nuts")
FIBER_METHODS = ("ndtm", "conditional")
OOD_SCORES = ("lmd",)  # the score of zoo ood's base invocation; every score's options are checked in test_ood_cli
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
    "existing_ood_out": ["{F}/ood-png-only", "{F}/afile"],
    "input_range": ["1,0", "0", "a,b", "nan,1", "0,inf", "", "1,2,3", "-1,1"],
    "unit_open": ["abc", "nan", "inf", "0", "1", "-0.5", "1.5", ""],
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
BAD["ood_input"] = [f"{{F}}/{n}" for n in _BAD_ARRAYS if n != "f16big.npy"] + _MISSING
BAD["ood_input"] += [f"{{F}}/{n}" for n in ("grey-images.npy", "big-images.npy", "nan-images.npy", "one-nan-image.npy")]
BAD["ood_input"] += ["{F}/notpng.png", "{F}/empty.png", "{F}/image.txt", "{F}/afile"]
BAD["data_file"] = ["{F}/garbage.npz", "{F}/nox.npz", "{F}/adir", "{F}/afile", "{F}/garbage.npy"]


def option_values(method: str, owner: str = "method") -> list[str]:
    """Bad ``KEY=VALUE`` strings for every option of ``method`` (a posterior or fiber method), from the fields' types,
    plus malformed and unknown keys."""
    import dataclasses
    import typing

    if owner == "method":
        from inference.methods import method_spec

        cls = method_spec(method).options_cls
    elif owner == "ood":
        from inference.ood import score_spec

        cls = score_spec(method).options
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
_AT_LEAST_ONE |= {"inner_steps", "dim_z", "dim_total", "attempts", "probes"}


def _options(method: str, owner: str = "method") -> list[str]:
    values = option_values(method, owner)
    keys = {v.split("=", 1)[0] for v in values if "=" in v}
    values += [f"{k}=0" for k in keys if k.rsplit(".", 1)[-1] in _AT_LEAST_ONE]
    return values


def option_kinds() -> None:
    """Fill the ``*_option`` kinds (imports the library, so called when the suite starts, not at import)."""
    for method in METHODS:
        BAD[f"{method}_option"] = _options(method)
    for method in ("cinn", "fmpe", "inn"):  # the plain names of nested settings, and an overflowing learning rate
        BAD[f"{method}_option"] += ["steps=0", "lr=1e39", "lr=0", "batch_size=0", "restarts=abc"]
    for method in FIBER_METHODS:
        BAD[f"{method}_option"] = _options(method, "fiber")
    for method in OOD_SCORES:
        BAD[f"{method}_option"] = _options(method, "ood")


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
