"""Shipped posterior estimators: a registry from names to estimator directories under ``zoo/estimators/``.

Each entry names a directory written by ``Estimator.save`` (``estimator.json`` + ``weights.safetensors``) and the
exact ``zoo train`` command that produced it, so that every shipped file is reproducible. zoo only knows names,
paths and metadata; ``inference.load(name)`` rebuilds the estimator (zoo never imports inference).

Example:
    >>> import zoo.estimators
    >>> zoo.estimators.get("arm-cinn").simulator
    'arm'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulators import Registry

ROOT = Path(__file__).with_name("estimators")


@dataclass(frozen=True)
class ShippedEstimator:
    """Metadata of one shipped estimator.

    Attributes:
        name: registry name, e.g. ``"arm-cinn"``.
        simulator: the simulator name it serves.
        simulator_options: the simulator options it was trained with (it is the default only for these).
        method: the posterior method.
        recipe: the exact command that trained it (run from the repository root).
        seed: the training seed.
        budget: simulations it was trained on.
        description: one line for ``zoo list``.
        measured: numbers measured on it (see docs/amortized.md), for the record.
        default: whether it is the default of ``zoo infer --simulator NAME`` for its simulator and options (one per
            simulator and options; others, e.g. a distilled estimator's teacher, load by name).
    """

    name: str
    simulator: str
    simulator_options: dict[str, Any]
    method: str
    recipe: str
    seed: int
    budget: int
    description: str
    measured: dict[str, Any] = field(default_factory=dict)
    default: bool = True

    @property
    def directory(self) -> Path:
        """The estimator directory inside the installed package."""
        return ROOT / self.name


_REGISTRY: Registry[ShippedEstimator] = Registry("shipped estimator")


def register(entry: ShippedEstimator) -> None:
    """Add a shipped estimator to the registry."""
    _REGISTRY.register(entry.name, entry)


def names() -> list[str]:
    """The names of the shipped estimators, sorted."""
    return _REGISTRY.names()


def get(name: str) -> ShippedEstimator:
    """The metadata of a shipped estimator.

    Raises:
        ValueError: for an unknown name, listing the shipped ones.
    """
    return _REGISTRY.get(name)


def is_shipped(name: Any) -> bool:
    """Whether ``name`` is the name of a shipped estimator."""
    return name in _REGISTRY


def default_for(simulator: str, options: dict[str, Any] | None = None) -> ShippedEstimator | None:
    """The shipped estimator ``zoo infer --simulator NAME`` uses by default, or ``None``.

    Arguments:
        simulator: a simulator name.
        options: the simulator's options (``simulator.options``); an estimator is the default only for the options it
            was trained with.
    """
    for _, entry in _REGISTRY.items():
        if entry.default and entry.simulator == simulator and _same(options or {}, entry.simulator_options):
            return entry
    return None


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = set(a) | set(b)
    return all(a.get(k) == b.get(k) for k in keys)


register(
    ShippedEstimator(
        name="gaussian-mixture-cinn",
        simulator="gaussian-mixture",
        simulator_options={"labels": "some"},
        method="cinn",
        recipe=(
            "OMP_NUM_THREADS=1 zoo train --simulator gaussian-mixture --method cinn --budget 50000 --seed 0 "
            "--option coupling=spline --option blocks=4 --option hidden=64 --option steps=4000 "
            "--option batch_size=512 --option val_every=500 --option val_statistic=mean --option restarts=1 "
            "--out zoo/estimators/gaussian-mixture-cinn"
        ),
        seed=0,
        budget=50_000,
        description="cINN, 4 rational-quadratic spline couplings, for the 8-mode mixture with the 'some' labels",
        measured={"c2st_per_label": [0.500, 0.510, 0.499, 0.510], "train_seconds": 1166},
    )
)


register(
    ShippedEstimator(
        name="arm-distilled",
        simulator="arm",
        simulator_options={"variant": "thesis", "noise_std": 0.0},
        method="cinn",
        recipe=(
            "zoo train --simulator arm --method cinn --budget 100000 --seed 0 --option teacher=arm-fmpe "
            "--option blocks=10 --option hidden=32 --option steps=40000 --option batch_size=512 --option val_every=500 "
            "--option restarts=1 --option pull_weight=1 --option pull_time=0.02 --out zoo/estimators/arm-distilled"
        ),
        seed=0,
        budget=100_000,
        description=(
            "cINN, 10 affine couplings of width 32, distilled from arm-fmpe: flow-matching accuracy at coupling-flow "
            "speed, for the noise-free arm (thesis variant)"
        ),
        measured={
            "c2st_median": 0.513,
            "calibration_error": 0.0035,
            "mean_resimulation_error": 0.0058,
            "draws_per_second": 1.51e6,
            "train_seconds": 1923,
        },
    )
)


register(
    ShippedEstimator(
        name="arm-cinn",
        simulator="arm",
        simulator_options={"variant": "thesis", "noise_std": 0.0},
        method="cinn",
        recipe=(
            "OMP_NUM_THREADS=1 zoo train --simulator arm --method cinn --budget 100000 --seed 0 "
            "--option blocks=10 --option hidden=32 --option steps=10000 --option batch_size=512 --option val_every=500 "
            "--option restarts=3 --out zoo/estimators/arm-cinn"
        ),
        seed=0,
        budget=100_000,
        description=(
            "cINN, 10 affine couplings of width 32 (maximum likelihood, best held-out calibration of 3 restarts), for "
            "the noise-free arm (thesis variant)"
        ),
        measured={
            "calibration_error": 0.0060,
            "mean_resimulation_error": 0.0120,
            "train_seconds": 797,
        },
        default=False,
    )
)


register(
    ShippedEstimator(
        name="arm-fmpe",
        simulator="arm",
        simulator_options={"variant": "thesis", "noise_std": 0.0},
        method="fmpe",
        recipe="zoo train --simulator arm --method fmpe --budget 100000 --seed 0 --out zoo/estimators/arm-fmpe",
        seed=0,
        budget=100_000,
        description=(
            "FMPE (flow matching, dopri5 sampling) for the noise-free arm: the most accurate arm posterior, ~1e3 "
            "draws/s; the teacher of arm-distilled"
        ),
        measured={"c2st_median": 0.505, "calibration_error": 0.0155, "mean_resimulation_error": 0.0044},
        default=False,
    )
)


register(
    ShippedEstimator(
        name="tissue-cinn",
        simulator="tissue",
        simulator_options={
            "photons": 10000,
            "snr": 10.0,
            "normalize": True,
            "source": "table",
            "split": "train",
            "table": None,
        },
        method="cinn",
        recipe=(
            "OMP_NUM_THREADS=1 zoo train --simulator tissue --method cinn --budget 15000 --seed 0 --option online=true "
            "--option blocks=6 --option hidden=96 --option steps=4000 --option batch_size=512 --option val_every=500 "
            "--option restarts=1 --out zoo/estimators/tissue-cinn"
        ),
        seed=0,
        budget=15_000,
        description="cINN, 6 affine couplings of width 96, for tissue spectra (trained on the shipped 15000-row table)",
        measured={
            "calibration_error": 0.0121,
            "calibration_error_sO2": 0.0347,
            "rmse_posterior_mean_sO2": 0.117,
            "train_seconds": 573,
        },
    )
)
