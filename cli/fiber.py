"""``zoo fiber``: sample the fiber of a subject through an input by NDTM guidance of a pretrained prior.

Writes ``DIR/fibers.nc`` (:class:`inference.results.FiberSamples`) and ``DIR/fibers.png`` (original, nearest
neighbour, augmented copy, fiber samples ordered by fiber loss, the loss under each), and prints the mean fiber
loss against the nearest-neighbour and augmentation baselines. ``--refine`` adds the appendix-A refinement: gradient
descent on the fiber loss in the latent space of a PCA autoencoder fitted to the reference set (never raw pixels).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import click
import numpy as np
import torch

import zoo
from inference.fibers.metrics import augment, features, nearest_neighbour, subject_fiber_loss
from inference.fibers.model import FiberModelOptions, PCAAutoencoder, fit_fiber_model
from inference.fibers.ndtm import NDTMOptions, check_compatible, check_subject, input_range, ndtm_fibers
from inference.fibers.refine import latent_refine
from inference.plots import fiber_grid, save_figures
from inference.results import FiberSamples

REFERENCE_SEED = 12345  # seed of the default color-MNIST reference set


def reference_set(spec: str, n: int) -> torch.Tensor:
    """The reference dataset for inputs by index and the nearest-neighbour baseline, shape (M, C, H, W).

    ``spec`` is ``"color-mnist"`` or a ``.npy`` file of shape (M, C, H, W). The color-MNIST set holds n distinct
    digits (a seeded permutation of the embedded set), each colored once with c0 ~ p(c0): no image has a
    recoloring of itself in the set, which would be an exact fiber member rather than a nearest neighbour.
    """
    if spec == "color-mnist":
        import simulators
        from simulators.color_mnist import colorize, sample_colors

        digits = simulators.get("color-mnist").digits
        if not 1 <= n <= len(digits):
            raise ValueError(f"--reference-size must be in [1, {len(digits)}] for color-mnist, got {n}")
        g = torch.Generator().manual_seed(REFERENCE_SEED)
        idx = torch.randperm(len(digits), generator=g)[:n]
        return colorize(digits[idx], sample_colors((n,), generator=g))
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"reference {spec!r} is neither 'color-mnist' nor an existing .npy file")
    ref = torch.as_tensor(np.load(path, allow_pickle=False), dtype=torch.float32)
    if ref.ndim != 4:
        raise ValueError(f"reference {spec!r} must have shape (M, C, H, W), got {tuple(ref.shape)}")
    return ref


def training_data(spec: str, ref: torch.Tensor):
    """Training images for the conditional fiber model: fresh simulator draws for color-mnist, else the reference."""
    if spec == "color-mnist":
        import simulators

        cm = simulators.get("color-mnist")
        return lambda n, g: cm.sample(n, generator=g).to(ref.device)
    return lambda n, g: ref[torch.randint(len(ref), (n,), generator=g).to(ref.device)]


def read_input(spec: str, reference: torch.Tensor) -> tuple[torch.Tensor, str]:
    """The target image (1, C, H, W): an integer index into the reference set, or a .npy / .png file."""
    if spec.lstrip("-").isdigit():
        i = int(spec)
        if not 0 <= i < len(reference):
            raise ValueError(f"--input index {i} is outside the reference set of {len(reference)} images")
        return reference[i : i + 1].clone(), f"reference[{i}]"
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"--input {spec!r} is neither an index nor an existing image file")
    if path.suffix.lower() == ".npy":
        x = torch.as_tensor(np.load(path, allow_pickle=False), dtype=torch.float32)
    elif path.suffix.lower() == ".png":
        from PIL import Image

        a = np.asarray(Image.open(path)).astype(np.float32) / 255.0
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
    return x, str(path)


@click.command("fiber")
@click.option("--subject", "subject_name", required=True, help="Subject: built-in name, directory or TorchScript.")
@click.option("--layer", default=None, help="Use this layer's activation as the features h.")
@click.option("--output", "output", default=None, help="Subject output: output, probs, log_probs.")
@click.option("--prior", "prior_name", default=None, help="Diffusion / flow-matching prior (ndtm): name or directory.")
@click.option("--input", "input_spec", required=True, help="Target: index into the reference set, .npy or .png.")
@click.option("-n", "n", type=int, default=16, show_default=True, help="Fiber samples.")
@click.option(
    "--method",
    type=click.Choice(["ndtm", "conditional"]),
    default="ndtm",
    show_default=True,
    help="ndtm: guide the prior; conditional: train a conditional fiber model on the reference data.",
)
@click.option("--gamma", type=float, default=NDTMOptions.gamma, show_default=True, help="Guidance strength.")
@click.option("--steps", type=int, default=NDTMOptions.num_steps, show_default=True, help="Denoising steps.")
@click.option("--inner-steps", type=int, default=NDTMOptions.inner_steps, show_default=True, help="N per step.")
@click.option("--schedule", type=click.Choice(["constant", "mid", "mid+end"]), default="mid", show_default=True)
@click.option("--fiber-weight", type=float, default=1.0, show_default=True, help="lambda (conditional).")
@click.option("--fm-steps", type=int, default=1000, show_default=True, help="Training steps (conditional).")
@click.option("--static-target", is_flag=True, help="Guide to phi(x) instead of the re-noised target.")
@click.option(
    "--renoise-until",
    type=float,
    default=NDTMOptions.renoise_until,
    show_default=True,
    help="t/T below which the static phi(x) replaces the re-noised target (0: re-noised at every step).",
)
@click.option("--refine", is_flag=True, help="Refine the samples in a PCA latent of the reference set (app. A).")
@click.option("--refine-steps", type=int, default=100, show_default=True, help="Refinement gradient steps.")
@click.option("--refine-lr", type=float, default=0.05, show_default=True, help="Refinement step size (Adam).")
@click.option("--refine-dim", type=int, default=96, show_default=True, help="PCA latent size of the refinement.")
@click.option("--reference", default="color-mnist", show_default=True, help="'color-mnist' or a .npy (M,C,H,W).")
@click.option("--reference-size", type=int, default=1000, show_default=True)
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output directory.")
@click.option("--overwrite", is_flag=True, help="Replace existing fibers.nc / fibers.png.")
def fiber(
    subject_name: str,
    layer: str | None,
    output: str | None,
    prior_name: str,
    input_spec: str,
    n: int,
    method: str,
    gamma: float,
    steps: int,
    inner_steps: int,
    schedule: str,
    fiber_weight: float,
    fm_steps: int,
    static_target: bool,
    renoise_until: float,
    refine: bool,
    refine_steps: int,
    refine_lr: float,
    refine_dim: int,
    reference: str,
    reference_size: int,
    batch_size: int,
    seed: int,
    device: str,
    out_dir: str,
    overwrite: bool,
) -> None:
    """Sample the fiber {x~ : phi(x~) = phi(x)} of a subject through an input with NDTM guidance."""
    out = Path(out_dir)
    files = (out / "fibers.nc", out / "fibers.png")
    for f in files:
        if f.exists() and not overwrite:
            raise FileExistsError(f"{f} already exists; pass --overwrite to replace it")
    if n < 1:
        raise ValueError(f"-n must be >= 1, got {n}")
    options = NDTMOptions(
        num_steps=steps,
        inner_steps=inner_steps,
        gamma=gamma,
        schedule=schedule,
        renoise_target=not static_target,
        renoise_until=renoise_until,
    )
    if refine and refine_steps < 1:
        raise ValueError(f"--refine-steps must be >= 1, got {refine_steps}")
    subject = zoo.load(subject_name, role="subject", device=device, output=output, layer=layer)
    if method == "ndtm" and prior_name is None:
        raise ValueError("--method ndtm needs --prior NAME_OR_PATH (a diffusion or flow-matching prior)")
    prior = zoo.load(prior_name, role="prior", device=device) if method == "ndtm" else None
    ref = reference_set(reference, reference_size).to(device)
    x, source = read_input(input_spec, ref)
    x = x.to(device)
    if tuple(ref.shape[1:]) != tuple(x.shape[1:]):
        raise ValueError(f"the reference images have shape {tuple(ref.shape[1:])}, the input {tuple(x.shape[1:])}")
    if prior is not None:
        check_compatible(prior, subject, x)  # every bad-input error before any sampling
    else:
        check_subject(subject, x)
    autoencoder = None
    if refine:
        if not 1 <= refine_dim <= min(len(ref), x[0].numel()):
            raise ValueError(f"--refine-dim must be in [1, {min(len(ref), x[0].numel())}] for this reference set")
        autoencoder = PCAAutoencoder(ref, refine_dim)

    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    traces, gammas = {}, None
    if method == "ndtm":
        samples, loss, traces, gammas = ndtm_fibers(
            prior, subject, x, n, options=options, generator=g, batch_size=batch_size, progress=True
        )
        method_options = dict(options.__dict__)
    else:
        fo = FiberModelOptions(fiber_weight=fiber_weight, steps=fm_steps)
        model, _ = fit_fiber_model(subject, training_data(reference, ref), options=fo, generator=g, progress=True)
        with torch.no_grad():
            samples = model.sample(n, subject(x), generator=g)
        loss = subject_fiber_loss(subject, samples, x)
        method_options = dict(fo.__dict__)
    unrefined = None
    if autoencoder is not None:
        clip = input_range(subject) or input_range(prior)
        with torch.no_grad():
            h = subject(x)
        refined, losses = latent_refine(
            samples.reshape(n * len(x), *x.shape[1:]),
            subject,
            h.repeat(n, *([1] * (h.ndim - 1))),
            autoencoder=autoencoder,
            steps=refine_steps,
            lr=refine_lr,
            clip=clip,
        )
        unrefined = float(loss.mean())
        samples, loss = refined.reshape(samples.shape), losses[-1].reshape(loss.shape)
        method_options["refine"] = {"steps": refine_steps, "lr": refine_lr, "latent_dim": refine_dim, "clip": clip}
        method_options["fiber_loss_before_refine"] = unrefined
    wall = time.perf_counter() - t0
    nn = nearest_neighbour(subject, x, ref, h_reference=features(subject, ref))
    aug = augment(x, 8, generator=torch.Generator().manual_seed(seed + 2))
    aug_loss = subject_fiber_loss(subject, aug, x).mean(0)
    result = FiberSamples(
        samples=samples[None].cpu(),
        target=x.cpu(),
        fiber_loss=loss[None].cpu(),
        method=method,
        subject=f"{subject_name}" + (f" layer={layer}" if layer else "") + (f" output={output}" if output else ""),
        prior=prior_name if method == "ndtm" else "conditional fiber model (trained in this run)",
        method_options={**method_options, "input": source, "reference": reference, "n": n},
        seed=seed,
        wall_time_s=wall,
        traces={k: v[None].cpu() for k, v in traces.items()},
        gamma=gammas,
        baselines={"nearest_neighbour": nn.loss.cpu(), "augmented": aug_loss.cpu()},
        neighbour=nn.image.cpu(),
        augmented=aug[0].cpu(),
    )
    result.save(files[0], overwrite=overwrite)
    save_figures({"fibers": fiber_grid(result, max_samples=min(n, 8))}, out)
    mean, nn_loss = float(loss.mean()), float(nn.loss.mean())
    ratio = nn_loss / mean if mean > 0 else math.inf
    click.echo(f"wrote {files[0]} and {files[1]} ({n} samples in {wall:.1f} s)")
    if unrefined is not None:
        click.echo(f"refinement ({refine_steps} steps, {refine_dim}-d PCA latent): mean {unrefined:.4g} -> {mean:.4g}")
    click.echo(
        f"fiber loss: mean {mean:.4g}, median {float(loss.median()):.4g}; nearest neighbour {nn_loss:.4g} "
        f"({ratio:.1f}x the mean); augmented {float(aug_loss.mean()):.4g}"
    )
