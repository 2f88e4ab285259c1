"""Benchmark of the shipped zoo models (issue 7 calls it ``benchmarks/zoo.py``; that name would shadow the ``zoo``
package for every script run from this folder): sizes, training times, sampling speed and sample quality (CPU).

Prints four tables:
1. every shipped model: role, parameters, size on disk, training time and command (from its zoo.json);
2. priors: images per second (DDIM, eta = 0) and the quality of their samples against the simulator — the
   digits-classifier recognition rate, class-frequency deviation, background-color KL / W2 against p(c0) and
   the color-tie error — each beside the same statistic for fresh simulator samples (the estimator's floor);
3. subjects: autoencoder reconstruction error and classifier accuracy on the held-out digits;
4. the autoencoder against the exact fiber: per-channel changes under it and under ``decolorize``
   (``inference.evaluation.color_mnist.channel_sensitivity``).

The paper (Rousselot et al. 2026, app. B.1) reports the color KL / W2 of *fiber* samples only as figures
(Fig. 4, 14), not of the unconditional priors, so there is no paper number to put beside these.

Usage:
    python benchmarks/models.py [--n 512] [--steps 50] [--threads 1] [--seed 0]
"""

from __future__ import annotations

import argparse

import torch

import zoo
from inference.evaluation import color_mnist as quality
from zoo import registry


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=512, help="samples per prior")
    ap.add_argument("--steps", type=int, default=50, help="DDIM steps")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    print(f"## shipped models (zoo {zoo.__version__}, torch {torch.__version__})\n")
    print("| model | role | parameters | size (MB) | train time (min) | command |")
    print("|---|---|---|---|---|---|")
    for m in registry.models():
        t = m["train_seconds"]
        print(
            f"| {m['name']} | {m['role']} | {m['parameters']:,} | {m['size_bytes'] / 1e6:.2f} | "
            f"{t / 60:.1f} | `{m['command']}` |"
        )

    classifier = zoo.load("digits-classifier", role="subject")
    print(f"\n## priors: {args.n} samples, DDIM {args.steps} steps, {args.threads} CPU thread(s), seed {args.seed}\n")
    print(
        "| prior | images/s | recognized (>= 0.9) | class freq max dev | color KL | color W2 | tie error |\n"
        "|---|---|---|---|---|---|---|"
    )
    for name, variant in (("color-mnist-ddpm", "tied"), ("color-mnist-ood-ddpm", "ood")):
        if name not in registry.names():
            print(f"| {name} | (weights missing) | | | | | |")
            continue
        r = quality.prior_report(
            zoo.load(name, role="prior"),
            classifier,
            variant=variant,
            n=args.n,
            num_steps=args.steps,
            generator=torch.Generator().manual_seed(args.seed),
        )
        p, s = r["prior"], r["simulator"]
        print(
            f"| {name} | {r['images_per_second']:.1f} | {p['recognized']:.3f} (sim {s['recognized']:.3f}) | "
            f"{p['class_freq_max_dev']:.3f} (sim {s['class_freq_max_dev']:.3f}) | "
            f"{p['color_kl']:.3f} (sim {s['color_kl']:.3f}) | {p['color_w2']:.3f} (sim {s['color_w2']:.3f}) | "
            f"{p['tie_error']:.3f} (sim {variant}: {s['tie_error']:.3f}) |"
        )

    print("\n## subjects, held-out digits\n")
    ae = quality.autoencoder_report(zoo.load("color-mnist-ae", role="subject"))
    cl = quality.classifier_report(classifier)
    print("| subject | metric | value |\n|---|---|---|")
    print(f"| color-mnist-ae | reconstruction RMSE of decolorize(x) ({ae['held_out']} digits) | {ae['rmse']:.4f} |")
    print(f"| color-mnist-ae | max abs error / PSNR | {ae['max_abs']:.3f} / {ae['psnr_db']:.1f} dB |")
    print(f"| digits-classifier | accuracy, tied colors ({cl['held_out']} digits) | {cl['accuracy_tied']:.3f} |")
    print(f"| digits-classifier | accuracy, independent colors half the time | {cl['accuracy_mixed']:.3f} |")

    sens = quality.channel_sensitivity(zoo.load("color-mnist-ae", role="subject"))
    print(
        "\n## color-mnist-ae against the exact fiber: one channel changed (medians over the held-out digits)\n\n"
        "| change | subject loss | decolorize loss |\n|---|---|---|"
    )
    for name, v in sens.items():
        print(f"| {name} | {v['subject']:.3g} | {v['decolorize']:.3g} |")
    print(f"\nchannel blindness (largest underrating relative to decolorize): {quality.channel_blindness(sens):.2f}")


if __name__ == "__main__":
    main()
