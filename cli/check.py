"""``zoo check``: sample the shipped priors and score them and the shipped subjects against the simulator."""

from __future__ import annotations

import click
import torch

import zoo
from zoo import quality, registry

# Sanity thresholds (not paper numbers): a prior must be recognized at >= 80% of the simulator's own rate and its
# background colors within KL 0.1 (30-bin histograms; the floor at n = 256 is ~0.03) of p(c0); the autoencoder
# must reconstruct within RMSE 0.05 (pixel range 1); the classifier must reach 90% held-out accuracy.
MIN_RECOGNIZED_RATIO = 0.8
MAX_COLOR_KL = 0.1
MAX_AE_RMSE = 0.05
MIN_ACCURACY = 0.9


@click.command("check")
@click.option("--n", "n", type=int, default=256, show_default=True, help="Samples per prior.")
@click.option("--steps", type=int, default=50, show_default=True, help="DDIM steps.")
@click.option("--seed", type=int, default=0, show_default=True)
def check(n: int, steps: int, seed: int) -> None:
    """Check the shipped models' quality; exit code 1 if a check fails."""
    missing = [m for m in registry.BUILTIN if m not in registry.names()]
    if missing:
        raise FileNotFoundError(f"shipped weights missing for {', '.join(missing)}; reinstall zoo")
    classifier = zoo.load("digits-classifier", role="subject")
    failed = []

    def verdict(name: str, ok: bool, text: str) -> None:
        click.echo(f"{'PASS' if ok else 'FAIL'}  {name}: {text}")
        if not ok:
            failed.append(name)

    for name, variant in (("color-mnist-ddpm", "tied"), ("color-mnist-ood-ddpm", "ood")):
        r = quality.prior_report(
            zoo.load(name, role="prior"),
            classifier,
            variant=variant,
            n=n,
            num_steps=steps,
            generator=torch.Generator().manual_seed(seed),
        )
        p, s = r["prior"], r["simulator"]
        verdict(
            name,
            p["recognized"] >= MIN_RECOGNIZED_RATIO * s["recognized"],
            f"recognized {p['recognized']:.3f} (simulator {s['recognized']:.3f})",
        )
        verdict(
            name,
            p["color_kl"] <= MAX_COLOR_KL,
            f"background color KL {p['color_kl']:.3f} (simulator floor {s['color_kl']:.3f}), "
            f"W2 {p['color_w2']:.3f} (floor {s['color_w2']:.3f})",
        )
    ae = quality.autoencoder_report(zoo.load("color-mnist-ae", role="subject"))
    verdict("color-mnist-ae", ae["rmse"] <= MAX_AE_RMSE, f"held-out reconstruction RMSE {ae['rmse']:.4f}")
    cl = quality.classifier_report(classifier)
    verdict(
        "digits-classifier",
        cl["accuracy_tied"] >= MIN_ACCURACY,
        f"held-out accuracy {cl['accuracy_tied']:.3f} (independent colors {cl['accuracy_mixed']:.3f})",
    )
    if failed:
        raise SystemExit(1)
