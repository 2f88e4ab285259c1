"""Every option of every registered method and fiber method, fed wrong types, zero, negative and non-finite values:
either a valid value or a one-line ValueError, never another exception (a traceback on the command line).

Zero or negative counts are refused unless the option documents 0 as "off" (``ALLOWED_ZERO``).
"""

from __future__ import annotations

import dataclasses
import math
import typing

import pytest
from click.testing import CliRunner

import inference
import inference.fibers
from zoo_cli.main import main

ALLOWED_ZERO = {
    "warmup", "skip_nonfinite", "val_every", "patience", "checkpoint_every", "dim_z", "dim_total", "val_size",
    "weight_y", "weight_z", "weight_x", "weight_rec", "weight_pad", "weight_resim", "noise_y", "noise_z",
    "noise_pad", "x_weight_sigma", "weight_decay", "gamma", "kappa", "tau", "lr_decay", "renoise_until", "outside",
    "end", "end_from", "fiber_weight", "eta", "lr", "time_power", "ml_weight", "pull_weight",
}  # fmt: skip
BAD = ["abc", "", 2.5, -1, 0, -1e-320, math.nan, math.inf, -math.inf, True, [1, "x"], {"a": 1}, 10**400]


def _fields(cls, prefix=""):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            yield from _fields(hints[f.name], f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", str(f.type)


CASES = [("method", m, name) for m in inference.methods() for name, _ in _fields(inference.method_spec(m).options_cls)]
CASES += [
    ("fiber", m, name)
    for m in inference.fibers.fiber_methods()
    for name, _ in _fields(inference.fibers.fiber_method_spec(m).options_cls)
]


@pytest.mark.parametrize("kind, method, name", CASES, ids=[f"{k}:{m}:{n}" for k, m, n in CASES])
def test_bad_option_values_are_one_line_errors(kind, method, name):
    make = inference.make_options if kind == "method" else inference.fibers.make_fiber_options
    for value in BAD:
        try:
            opts = make(method, {name: value})
        except ValueError as e:
            assert str(e) and "\n" not in str(e), (name, value, str(e))
            continue
        leaf = name.split(".")[-1]
        got = opts
        for part in name.split("."):
            got = getattr(got, part)
        if isinstance(value, int | float) and not isinstance(value, bool) and value <= 0 and leaf not in ALLOWED_ZERO:
            if isinstance(got, int | float) and not isinstance(got, bool) and got <= 0:
                pytest.fail(f"{method} option {name}={value!r} accepted; a count / size must be refused at <= 0")
        if isinstance(got, float):
            assert math.isfinite(got), (name, value)


@pytest.mark.parametrize("option", ["steps=abc", "blocks=0", "lr=1e39", "train.batch_size=-3", "nope=1", "eps=abc"])
def test_bad_options_on_the_command_line_exit_2_in_one_line(option, tmp_path):
    method = "abc" if option.startswith("eps") else "cinn"
    args = ["train", "-s", "arm", "-m", method, "--option", option, "--out", str(tmp_path / "o"), "-q"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2, r.output
    assert r.output.startswith("Error: ") and r.output.count("\n") == 1, r.output
    assert not (tmp_path / "o").exists()
