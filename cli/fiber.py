"""``zoo fiber``: sample the fiber of a subject through an input with a registered fiber method.

Parses, calls :func:`inference.fibers.sample_fibers` (NDTM guidance of a pretrained prior, or the conditional fiber
model; ``--refine`` adds the appendix-A refinement in a PCA latent of the reference set), writes ``DIR/fibers.nc``
(:class:`inference.results.FiberSamples`) and ``DIR/fibers.png`` (original, nearest neighbour, augmented copy, fiber
samples ordered by fiber loss, the loss under each), and prints the mean fiber loss against the nearest-neighbour and
augmentation baselines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import numpy as np
import torch

from inference.fibers import RefineOptions, fiber_methods, sample_fibers
from inference.fibers.ndtm import NDTMOptions
from simulators.files import load_npy
from zoo_cli.options import SEED, FiniteFloat, FiniteFloatPair, check_out, count, parse_options, threads_option

# the method flags of earlier releases, kept as shorthands for --option: (flag value key) -> (method, option)
_SHORTHANDS = {
    "gamma": ("ndtm", "gamma"),
    "steps": ("ndtm", "num_steps"),
    "inner_steps": ("ndtm", "inner_steps"),
    "schedule": ("ndtm", "schedule"),
    "renoise_until": ("ndtm", "renoise_until"),
    "fiber_weight": ("conditional", "fiber_weight"),
    "fm_steps": ("conditional", "train.steps"),
}


def read_image(spec: str) -> torch.Tensor | int:
    """The ``--input``: an integer index into the reference set, or one image (1, C, H, W) from a .npy / .png file."""
    if spec.lstrip("-").isdigit():
        return int(spec)
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"--input {spec!r} is neither an index nor an existing image file")
    if path.suffix.lower() == ".npy":
        x = torch.as_tensor(load_npy(path, "an image (C, H, W) of real numbers"), dtype=torch.float32)
    elif path.suffix.lower() == ".png":
        from PIL import Image, UnidentifiedImageError

        try:
            a = np.asarray(Image.open(path)).astype(np.float32) / 255.0
        except (OSError, UnidentifiedImageError) as e:
            raise ValueError(f"cannot read --input {spec!r} as a PNG image ({type(e).__name__})") from None
        x = torch.as_tensor(a if a.ndim == 2 else a.transpose(2, 0, 1))  # HWC -> CHW
        x = x[None] if x.ndim == 2 else x
    else:
        raise ValueError(f"--input {spec!r}: use an index, a .npy array (C, H, W) or a .png image")
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"--input must hold one image (C, H, W), got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"--input {spec!r} contains NaN or infinite values")
    return x


def ood_check(o: dict[str, Any], alpha: float = 0.01) -> None:
    """``--ood-check``: score the input under the prior with the cheapest calibrated score and warn on stderr."""
    from inference.fibers.sample import reference_set
    from inference.ood import quick_check
    from zoo import load

    if o["prior_name"] is None:
        raise click.UsageError("--ood-check tests the input against a prior: give --prior NAME_OR_DIR")
    prior = load(o["prior_name"], role="prior", device=o["device"], trust_code=o["trust_code"])
    x = read_image(o["input_spec"])
    if isinstance(x, int):
        x = reference_set(o["reference"], o["reference_size"])[x : x + 1]
    r = quick_check(prior, x.to(torch.float32), seed=o["seed"], prior_name=o["prior_name"])
    p = float(r.p_value[0])
    verdict = "atypical" if p < alpha else "typical"
    line = f"ood-check: input {verdict} under {o['prior_name']} (p = {p:.3g}, {r.method})"
    if p < alpha:
        line += "; fibers through inputs unlike the prior's data are extrapolation"
    click.echo(line, err=True)


@click.command("fiber")
@click.option(
    "--subject",
    "subject_name",
    required=True,
    help="Subject: built-in name, zoo / diffusers directory, or TorchScript / torch.export file (--trust-code).",
)
@click.option(
    "--weights",
    type=click.Path(dir_okay=False),
    default=None,
    help="Weights (.safetensors) of a --subject given as package.module:factory (with --trust-code).",
)
@click.option("--layer", default=None, help="Use this layer's activation as the features h.")
@click.option(
    "--input-range",
    type=FiniteFloatPair(),
    default=None,
    help="The subject's input range LO,HI (e.g. 0,1 or -1,1) when its file does not record it.",
)
@click.option("--output", "output", default=None, help="Subject output: output, probs, log_probs, latent (IB-INN).")
@click.option("--prior", "prior_name", default=None, help="Diffusion / flow-matching prior (ndtm): name or directory.")
@click.option("--input", "input_spec", required=True, help="Target: index into the reference set, .npy or .png.")
@click.option("-n", "n", type=count(), default=16, show_default=True, help="Fiber samples.")
@click.option("--method", type=click.Choice(fiber_methods()), default="ndtm", show_default=True, help="Fiber method.")
@click.option("--option", "opts", multiple=True, metavar="KEY=VALUE", help="Fiber-method option, repeatable.")
@click.option("--gamma", type=FiniteFloat(min=0), help=f"Guidance strength (ndtm; default {NDTMOptions.gamma}).")
@click.option("--steps", type=count(), help=f"Denoising steps (ndtm; default {NDTMOptions.num_steps}).")
@click.option("--inner-steps", type=count(), help=f"N per step (ndtm; default {NDTMOptions.inner_steps}).")
@click.option("--schedule", type=click.Choice(["constant", "mid", "mid+end"]), help="gamma_t schedule (ndtm; mid).")
@click.option("--fiber-weight", type=FiniteFloat(min=0), default=1.0, show_default=True, help="lambda (conditional).")
@click.option("--fm-steps", type=count(), default=1000, show_default=True, help="Training steps (conditional).")
@click.option("--static-target", is_flag=True, help="Guide to phi(x) instead of the re-noised target (ndtm).")
@click.option(
    "--renoise-until",
    type=FiniteFloat(0, 1),
    help=f"t/T below which phi(x) replaces the re-noised target (ndtm; default {NDTMOptions.renoise_until}).",
)
@click.option("--refine", is_flag=True, help="Refine the samples in a PCA latent of the reference set (app. A).")
@click.option("--refine-steps", type=count(), default=100, show_default=True, help="Refinement gradient steps.")
@click.option(
    "--refine-lr",
    type=FiniteFloat(min=0, min_open=True),
    default=0.05,
    show_default=True,
    help="Refinement step size (Adam).",
)
@click.option("--refine-dim", type=count(), default=96, show_default=True, help="PCA latent size of the refinement.")
@click.option("--reference", default="color-mnist", show_default=True, help="'color-mnist' or a .npy (M,C,H,W).")
@click.option("--reference-size", type=count(), default=1000, show_default=True)
@click.option("--batch-size", type=count(), default=64, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output directory.")
@click.option("--overwrite", is_flag=True, help="Replace existing fibers.nc / fibers.png.")
@click.option(
    "--trust-code",
    is_flag=True,
    help="Run the code a subject or prior carries (TorchScript, torch.export, module:factory); see docs/security.md.",
)
@click.option(
    "--ood-check",
    is_flag=True,
    help="Before sampling, test whether the input looks like the prior's data (diffuse-denoise, calibrated); warn.",
)
@threads_option
def fiber(**o: Any) -> None:
    """Sample the fiber {x~ : phi(x~) = phi(x)} of a subject through an input."""
    out = Path(o["out_dir"])
    files = (out / "fibers.nc", out / "fibers.png")
    check_out(out, tuple(f.name for f in files), o["overwrite"])
    options = {opt: o[flag] for flag, (m, opt) in _SHORTHANDS.items() if m == o["method"] and o[flag] is not None}
    if o["static_target"] and o["method"] == "ndtm":
        options["renoise_target"] = False
    options.update(parse_options(o["opts"]))
    refine = RefineOptions(o["refine_steps"], o["refine_lr"], o["refine_dim"])  # checked even when not --refine
    refine = refine if o["refine"] else None
    if o["ood_check"]:
        ood_check(o)
    result = sample_fibers(
        o["subject_name"],
        read_image(o["input_spec"]),
        o["n"],
        method=o["method"],
        prior=o["prior_name"],
        options=options,
        reference=o["reference"],
        reference_size=o["reference_size"],
        refine=refine,
        seed=o["seed"],
        batch_size=o["batch_size"],
        device=o["device"],
        subject_options={
            "output": o["output"],
            "layer": o["layer"],
            "weights": o["weights"],
            "input_range": o["input_range"],
        },
        trust_code=o["trust_code"],
        source=None if o["input_spec"].lstrip("-").isdigit() else o["input_spec"],
        progress=True,
    )
    from inference.plots import fiber_grid, save_figures

    result.save(files[0], overwrite=o["overwrite"])
    save_figures({"fibers": fiber_grid(result, max_samples=min(o["n"], 8))}, out)
    click.echo(f"wrote {files[0]} and {files[1]} ({o['n']} samples in {result.wall_time_s:.1f} s)")
    for line in result.describe():
        click.echo(line)
    if "nearest_neighbour" in result.baselines:
        nn, mean = float(result.baselines["nearest_neighbour"].mean()), float(result.fiber_loss.mean())
        if mean > nn:
            hint = "raise --gamma (or --steps / --inner-steps)"
            if result.method == "conditional":
                hint = "train longer (--fm-steps) or use --method ndtm"
            click.echo(
                f"warning: the samples' mean fiber loss {mean:.4g} is above the nearest neighbour's {nn:.4g}: they are "
                f"no closer to the fiber than the reference data; {hint}",
                err=True,
            )
