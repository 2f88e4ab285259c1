"""``zoo diagnose --subject NAME``: calibration and OOD diagnostics of a classifier subject.

Any subject with class scores (logits, probabilities or log-probabilities) — a shipped classifier, a zoo model
directory, or a user's model through the loaders of ``zoo.load`` — is evaluated on labelled data (``--data``:
held-out color-MNIST digits, or an ``.npz`` with ``x`` (N, *shape) and ``y`` (N,)) and on OOD sets (``--ood``).
Writes ``DIR/classifier.md`` (the tables), ``DIR/classifier.json`` and ``DIR/reliability.png``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import numpy as np
import torch

from zoo_cli.options import check_out, count

OUTPUTS = ("classifier.md", "classifier.json", "reliability.png")


def subject_options(f: Callable) -> Callable:
    """The options of the classifier branch of ``zoo diagnose``."""
    for decorator in reversed(
        [
            click.option("--subject", default=None, help="Diagnose a classifier subject (name or directory) instead."),
            click.option(
                "--data",
                default="color-mnist",
                show_default=True,
                help="Labelled data for --subject: 'color-mnist' (held-out digits) or .npz with x and y.",
            ),
            click.option(
                "--ood",
                default="rotated,upsampled,noise,constant",
                show_default=True,
                help="OOD sets for --subject: untied, rotated, upsampled, noise, constant or .npy files ('': none).",
            ),
            click.option("--n-data", type=count(2, 1_000_000), default=1000, show_default=True, help="Images drawn."),
            click.option("--device", default="cpu", show_default=True, help="Where the subject runs (--subject)."),
        ]
    ):
        f = decorator(f)
    return f


def _labelled(spec: str, n: int, seed: int) -> tuple[torch.Tensor, np.ndarray, dict[str, torch.Tensor]]:
    from inference.ood.sets import color_mnist_sets
    from zoo.recipes.data import split_digits

    if spec == "color-mnist":
        import simulators

        _, held_out = split_digits(len(simulators.get("color-mnist").digits))
        sets, labels = color_mnist_sets(n, seed, digits=held_out)
        return sets.pop("in-distribution"), labels.numpy(), sets
    path = Path(spec)
    if path.suffix.lower() != ".npz" or not path.is_file():
        raise ValueError(f"--data {spec!r} is neither 'color-mnist' nor an existing .npz file with x and y")
    from simulators.files import read_array

    x, y = read_array(path, "x"), read_array(path, "y")
    if len(x) != len(y) or y.ndim != 1 or not np.all(np.equal(np.mod(y, 1), 0)):
        raise ValueError(f"--data {spec!r}: y must be (N,) integer labels for the N rows of x, got {y.shape}")
    return torch.as_tensor(x, dtype=torch.float32), y.astype(int), {}


def _ood_sets(spec: str, built: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    from inference.ood.sets import OOD_SETS
    from simulators.files import load_npy

    out = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        if item in OOD_SETS:
            if item not in built:
                raise ValueError(f"--ood {item!r} is a color-mnist set; it needs --data color-mnist")
            out[item] = built[item]
        elif item.endswith(".npy") and Path(item).is_file():
            out[Path(item).stem] = torch.as_tensor(load_npy(item, "OOD inputs (N, *shape)"), dtype=torch.float32)
        else:
            raise ValueError(f"--ood {item!r}: use {', '.join(OOD_SETS)} or an existing .npy file")
    return out


def run(o: dict[str, Any]) -> None:
    """The classifier branch of ``zoo diagnose``."""
    from inference.evaluation.classifier import evaluate_classifier
    from inference.plots import reliability_diagram, save_figures
    from inference.results.netcdf import write_text
    from simulators.devices import check_device
    from zoo import load

    if o["out"] is None:
        raise click.UsageError("a classifier diagnosis needs --out DIR")
    check_out(o["out"], OUTPUTS, o["overwrite"])
    x, y, built = _labelled(o["data"], o["n_data"], o["seed"])
    ood = _ood_sets(o["ood"], built)
    subject = load(
        o["subject"], role="subject", device=check_device(o["device"]), trust_code=o.get("trust_code", False)
    )
    shape = getattr(subject, "input_shape", None)
    for name, arr in {"--data": x, **{f"--ood {k}": v for k, v in ood.items()}}.items():
        if shape is not None and tuple(arr.shape[1:]) != tuple(shape):
            raise ValueError(f"{name} inputs have shape {tuple(arr.shape[1:])}; the subject expects {tuple(shape)}")
        if not bool(torch.isfinite(arr).all()):
            raise ValueError(f"{name} inputs contain NaN or infinite values")
    report = evaluate_classifier(subject, x, y, ood=ood, name=o["subject"])
    c = report.calibration
    summary = {
        "subject": o["subject"],
        "n": report.n,
        "calibration": {k: getattr(c, k) for k in ("accuracy", "ece", "mce", "ice", "gme", "oce")},
        "ood": report.ood,
        "bins": {"edges": c.edges.tolist(), "counts": c.counts.tolist()},
    }
    written = [
        str(write_text(o["out"] / OUTPUTS[0], report.table() + "\n", overwrite=o["overwrite"])),
        str(write_text(o["out"] / OUTPUTS[1], json.dumps(summary, indent=1) + "\n", overwrite=o["overwrite"])),
    ]
    written += save_figures({"reliability": reliability_diagram(report)}, o["out"])
    click.echo(f"wrote {', '.join(written)}")
    click.echo(report.table())
