"""``zoo ood``: is this input from the prior's world? Score inputs under a prior and calibrate into p-values.

Loads the prior, scores the inputs and an in-distribution reference with a registered score
(:mod:`inference.ood.scores`), writes ``DIR/ood.nc`` (:class:`inference.results.OODScores`), ``DIR/ood_scores.png``
(input against reference scores) and ``DIR/ood_atypical.png`` (the most atypical inputs with their
reconstructions), and prints a one-line summary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import torch

from inference.ood import scores
from inference.ood.pvalues import ALTERNATIVES
from inference.results.ood import ALPHA
from simulators.files import load_npy
from zoo_cli.options import SEED, FiniteFloat, check_out, count, parse_options, threads_option


def read_inputs(spec: str) -> torch.Tensor:
    """The ``--input``: a .npy array of inputs (N, *shape) or one input (*shape) for images (C, H, W), or a .png."""
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"--input {spec!r} is not an existing .npy or .png file")
    if path.suffix.lower() == ".png":
        from zoo_cli.fiber import read_image

        return read_image(spec)
    if path.suffix.lower() != ".npy":
        raise ValueError(f"--input {spec!r}: use a .npy array (N, *shape) or a .png image")
    return torch.as_tensor(load_npy(path, "inputs (N, *shape) of real numbers"), dtype=torch.float32)


def _batch(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Inputs as (N, *shape): one unbatched input of ``shape`` gets a batch axis; other shapes pass to the check."""
    return x[None] if tuple(x.shape) == shape else x


def _range_note(x: torch.Tensor, prior: Any) -> str | None:
    rng = (prior.meta.get("input") or {}).get("range")
    if not (isinstance(rng, list | tuple) and len(rng) == 2):
        return None
    lo, hi = float(rng[0]), float(rng[1])
    span = hi - lo
    if float(x.min()) < lo - span or float(x.max()) > hi + span:
        return (
            f"note: the inputs span [{float(x.min()):.4g}, {float(x.max()):.4g}] but the prior was trained on "
            f"[{lo:g}, {hi:g}]; rescale them if that is a units mistake (they will score as atypical)"
        )
    return None


@click.command("ood")
@click.option("--prior", "prior_name", required=True, help="Prior: built-in name, zoo or diffusers directory.")
@click.option("--input", "input_spec", required=True, help="Inputs: .npy (N, *shape) or (C, H, W), or a .png.")
@click.option(
    "--reference",
    default=None,
    help="In-distribution inputs: 'prior' (its samples), a data source ('color-mnist', 'color-mnist:ood') or a .npy "
    "(M, *shape). Default: the prior's recorded training data, else its samples.",
)
@click.option("--reference-size", type=count(2, 100_000), default=200, show_default=True, help="Reference draws.")
@click.option("--method", type=click.Choice(scores()), default="lmd", show_default=True, help="The score.")
@click.option("--option", "opts", multiple=True, metavar="KEY=VALUE", help="Score option, repeatable (docs/ood.md).")
@click.option(
    "--alternative",
    type=click.Choice(ALTERNATIVES),
    default="two-sided",
    show_default=True,
    help="Which scores are atypical: both tails, or only the out-of-distribution side ('greater').",
)
@click.option("--alpha", type=FiniteFloat(0, 1, min_open=True, max_open=True), default=ALPHA, show_default=True)
@click.option("--batch-size", type=count(), default=128, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output directory.")
@click.option("--overwrite", is_flag=True, help="Replace existing ood.nc / ood_*.png.")
@click.option("--trust-code", is_flag=True, help="Run the code a prior carries (module:factory); docs/security.md.")
@threads_option
def ood(**o: Any) -> None:
    """Score inputs under a prior: are they from the prior's world?"""
    from inference.ood import ood_scores
    from simulators.devices import check_device
    from zoo import load

    out = Path(o["out_dir"])
    files = ("ood.nc", "ood_scores.png", "ood_atypical.png")
    check_out(out, files, o["overwrite"])
    options = parse_options(o["opts"])
    from inference.ood import score_spec

    score_spec(o["method"]).make_options(options)  # bad options fail before the prior loads
    x = read_inputs(o["input_spec"])
    prior = load(o["prior_name"], role="prior", device=check_device(o["device"]), trust_code=o["trust_code"])
    x = _batch(x, tuple(prior.shape))
    result = ood_scores(
        prior,
        x,
        method=o["method"],
        options=options,
        reference=o["reference"],
        reference_size=o["reference_size"],
        alternative=o["alternative"],
        seed=o["seed"],
        batch_size=o["batch_size"],
        prior_name=o["prior_name"],
        progress=True,
    )
    note = _range_note(x, prior)
    from inference.plots import ood_figures, save_figures

    result.save(out / files[0], overwrite=o["overwrite"])
    written = save_figures(ood_figures(result, alpha=o["alpha"]), out)
    if note:
        click.echo(note, err=True)
    click.echo(result.summary(o["alpha"]))
    click.echo(f"wrote {out / files[0]} and {', '.join(Path(p).name for p in written)} in {result.wall_time_s:.1f} s")
    worst = result.flagged(o["alpha"])[:5]
    if len(worst):
        click.echo("most atypical: " + ", ".join(f"#{i} (p={result.p_value[i]:.3g})" for i in worst))
