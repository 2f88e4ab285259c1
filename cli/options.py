"""Command-line options shared by several commands, and the parsing of ``--option KEY=VALUE``."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import torch

import inference
from simulators.writes import check_folder

LARGEST = 2**63 - 1  # torch sizes and counts are int64


class Count(click.IntRange):
    """A whole number in [minimum, maximum] (a count, size or index); anything else is a usage error that says
    which numbers the option takes."""

    def _describe_range(self) -> str:
        return f"x>={self.min}" if self.max == LARGEST else super()._describe_range()

    def convert(self, value, param, ctx):
        number = click.INT.convert(value, param, ctx)
        if number > self.max:
            self.fail(f"{value} is too large (at most {self.max})", param, ctx)
        return super().convert(number, param, ctx)


class FiniteFloatPair(click.ParamType):
    """``LO,HI``: two finite numbers with LO < HI (an input range)."""

    name = "lo,hi"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        parts = str(value).split(",")
        try:
            lo, hi = (float(p) for p in parts)
        except ValueError:
            self.fail(f"{value!r} is not two numbers LO,HI (e.g. 0,1 or -1,1)", param, ctx)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            self.fail(f"{value!r} must be two finite numbers with LO < HI", param, ctx)
        return (lo, hi)


def count(minimum: int = 1, maximum: int = LARGEST) -> click.IntRange:
    """A whole number in [minimum, maximum] (a count, size or index): anything else is a usage error."""
    return Count(minimum, maximum)


SEED = click.IntRange(-(2**63), 2**64 - 1)  # what torch.Generator.manual_seed takes


class FiniteFloat(click.FloatRange):
    """A finite number in a range: NaN, inf and 1e400 are usage errors (click's FloatRange lets NaN through)."""

    name = "number"

    def convert(self, value, param, ctx):
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return super().convert(number, param, ctx)


def check_out(out: Path, outputs: tuple[str, ...], overwrite: bool) -> None:
    """Before any work: ``out`` can be a folder (it is one, or its first existing ancestor is), and, without
    ``--overwrite``, none of the files a command writes there (glob ``outputs``) exists, links included."""
    if overwrite or check_folder(out, "--out") != out:
        return
    for pattern in outputs:
        for path in sorted(out.glob(pattern)):
            raise FileExistsError(f"{path} already exists; pass --overwrite to replace it")


def _set_threads(ctx: click.Context, param: click.Parameter, value: int) -> int:
    torch.set_num_threads(value)
    return value


def threads_option(f: Callable) -> Callable:
    """``--threads N`` (default 1): torch's CPU threads for the command. zoo's networks are small: one thread per
    process trains fastest on few cores (docs/getting-started.md, "Threads"); more help sampling large batches."""
    return click.option(
        "--threads",
        type=count(maximum=4096),
        default=1,
        show_default=True,
        expose_value=False,
        is_eager=True,
        callback=_set_threads,
        help="CPU threads for torch.",
    )(f)


def source_options(use: str) -> Callable[[Callable], Callable]:
    """``--simulator``, ``--method``, ``--trust-code`` and ``--estimator``: where ``zoo infer`` / ``zoo diagnose`` get
    their estimator (see :func:`estimator_choice`); ``use`` completes the ``--estimator`` help ("to use")."""

    def decorate(f: Callable) -> Callable:
        for decorator in reversed(
            (
                click.option(
                    "--simulator",
                    "-s",
                    "name",
                    help="Simulator: a name (zoo list), module:factory or file.py:factory; optional with --estimator.",
                ),
                click.option(
                    "--method",
                    "-m",
                    default=None,
                    help="Posterior method (see `zoo list`). Default: the shipped estimator for this simulator if "
                    "there is one and no --budget/--option is given, else abc.",
                ),
                click.option(
                    "--trust-code",
                    is_flag=True,
                    help="Rebuild the saved estimator's simulator when it is your module or file (it runs that code).",
                ),
                click.option(
                    "--estimator",
                    type=click.Path(path_type=Path),
                    help=f"A saved estimator directory (zoo train) {use}.",
                ),
            )
        ):
            f = decorator(f)
        return f

    return decorate


def fit_options(f: Callable) -> Callable:
    """``--budget``, ``--option``, ``--sim-option``, ``--seed``: how ``zoo infer`` / ``diagnose`` / ``train`` fit an
    estimator (see :func:`inference.estimator_for`)."""
    for decorator in reversed(
        (
            click.option(
                "--budget", "-b", type=count(), default=None, help="Simulation budget (default: the method's)."
            ),
            click.option("--option", "opts", multiple=True, metavar="KEY=VALUE", help="Method option, repeatable."),
            click.option(
                "--sim-option", "sim_opts", multiple=True, metavar="KEY=VALUE", help="Simulator option, repeatable."
            ),
            click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the run's generator."),
            threads_option,
        )
    ):
        f = decorator(f)
    return f


def parse_options(pairs: tuple[str, ...]) -> dict:
    """Parse repeated ``--option key=value`` into a dict, converting numbers and booleans."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise click.BadParameter(f"expected key=value, got {pair!r}", param_hint="--option")
        k, v = pair.split("=", 1)
        out[k.strip().replace("-", "_")] = _convert(v.strip())
    return out


def _convert(v: str):
    low = v.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


def estimator_choice(
    o: dict[str, Any], generator: torch.Generator, *, simulations: tuple | None = None
) -> inference.EstimatorChoice:
    """:func:`inference.estimator_for` with a command's arguments ``o``: click's keyword arguments of ``--simulator``,
    ``--method``, ``--estimator``, ``--retrain`` where the command has them, and :func:`fit_options`."""
    return inference.estimator_for(
        o["name"],
        method=o.get("method"),
        estimator=o.get("estimator"),
        budget=o["budget"],
        options=parse_options(o["opts"]) or None,
        simulator_options=parse_options(o["sim_opts"]),
        retrain=o.get("retrain", False),
        trust_code=o.get("trust_code", False),
        generator=generator,
        progress=not o["quiet"],
        simulations=None if simulations is None else simulations[:2],
        param_names=None if simulations is None else simulations[2],
    )


def read_table_option(o: dict[str, Any]) -> tuple | None:
    """``--simulations FILE`` (with ``--theta-key`` / ``--x-key``): (theta, x, parameter names) or ``None``."""
    if o.get("simulations") is None:
        return None
    from simulators.files import read_simulations

    names = None
    if o["name"] is not None:  # CSV columns named by the simulator's parameters
        import simulators

        names = simulators.get(o["name"], **parse_options(o["sim_opts"])).param_names
    return read_simulations(o["simulations"], theta_key=o["theta_key"], x_key=o["x_key"], param_names=names)
