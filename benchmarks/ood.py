"""OOD detection with the shipped color-MNIST prior, against ground truth: ROC-AUC of every score on OOD sets.

In-distribution: color-MNIST as the prior ``color-mnist-ddpm`` was trained on (tied colours: digit colour
(c0 + 0.5) mod 1), fresh colour draws c0 ~ p(c0) on the embedded digits. Out-of-distribution sets, all made offline:

- ``untied``: the digit colour drawn independently of the background (the simulator's ``ood`` variant);
- ``rotated``: the digits turned by 90 degrees, tied colours;
- ``upsampled``: scikit-learn's 8x8 digits upsampled to fill the whole 16x16 frame (no background border), tied;
- ``noise``: uniform noise images;
- ``constant``: flat images of a background colour c0 ~ p(c0), no digit (simpler than the data).

Scores (docs/ood.md): ``lmd`` (r = 10 checkerboard inpaintings, median MSE), ``diffuse-denoise`` at t = 0.3 (the
default) and at the seed's t = 0.5, and the likelihoods: the probability-flow ODE log-density (Hutchinson trace),
the ELBO (one chain) and the IWAE bound (8 chains); a likelihood's OOD score is -log p. ROC-AUC is the probability
that an OOD input scores as less typical than an in-distribution one (0.5 chance; below 0.5 the score ranks OOD
inputs as *more* typical). Then the seed's numbers (LMD paper, Table 1 and Table 3's MSE column) for its digit pairs.

Usage:
    python benchmarks/ood.py [--n 100] [--seed 0] [--blocks 1,2,4] [--threads 2] [--scores lmd,diffuse-denoise,...]
"""

from __future__ import annotations

import argparse
import time

import torch

import zoo
from inference.ood import Typicality, roc_auc, score, score_spec
from inference.ood.sets import color_mnist_sets

# LMD paper (Liu, Zhou & Weinberger), Table 1 (likelihood, LMD with LPIPS) and Table 3 (LMD with MSE), digit pairs
SEED_TABLE = {
    "MNIST->KMNIST": (0.948, 0.984, 0.998),
    "MNIST->FMNIST": (0.997, 0.999, 0.995),
    "KMNIST->MNIST": (0.152, 0.978, 0.835),
    "KMNIST->FMNIST": (0.833, 0.993, 0.802),
    "FMNIST->MNIST": (0.172, 0.992, 0.993),
    "FMNIST->KMNIST": (0.542, 0.990, 0.998),
}

RUNS = {  # row label -> (score, options)
    "lmd": ("lmd", {}),
    "diffuse-denoise t=0.3": ("diffuse-denoise", {"t": 0.3}),
    "diffuse-denoise t=0.5": ("diffuse-denoise", {"t": 0.5}),
    "likelihood (ODE)": ("likelihood", {}),
    "elbo": ("elbo", {"chains": 1}),
    "iwae (8 chains)": ("iwae", {"chains": 8}),
}


def datasets(n: int, seed: int) -> dict[str, torch.Tensor]:
    """The in-distribution set and the OOD sets (:func:`inference.ood.sets.color_mnist_sets`)."""
    return color_mnist_sets(n, seed)[0]


def table(prior_name: str, sets: dict[str, torch.Tensor], id_key: str, runs: dict, seed: int) -> dict:
    """Score every set with every run under one prior; print the ROC-AUC table (and the two-sided test's) and
    return it. The two-sided rows split the in-distribution scores: the first half is the reference, the second
    half the in-distribution test inputs; an input's OOD score is 1 - its typicality p-value."""
    prior = zoo.load(prior_name)
    names = [k for k in sets if k != id_key]
    rows, two_sided, seconds = {}, {}, {}
    for label, (method, options) in runs.items():
        sign = 1.0 if score_spec(method).higher_is_ood else -1.0
        t0 = time.perf_counter()
        vals = {}
        for k, x in sets.items():
            g = torch.Generator().manual_seed(seed + 1)
            vals[k] = sign * score(prior, x, method, options=options, generator=g).score.numpy()
        seconds[label] = (time.perf_counter() - t0) / sum(len(x) for x in sets.values())
        rows[label] = {k: roc_auc(vals[id_key], vals[k]) for k in names}
        half = len(vals[id_key]) // 2
        test = Typicality(vals[id_key][:half])
        p_in = test.p_values(vals[id_key][half:])
        two_sided[label] = {k: roc_auc(-p_in, -test.p_values(vals[k])) for k in names}
        print(f"  {label}: " + ", ".join(f"{k} {v:.3f}" for k, v in rows[label].items()), flush=True)
    n = len(sets[id_key])
    print(f"\nROC-AUC against {id_key} ({n} images per set), prior {prior_name}")
    head = f"| {'score':<32} | " + " | ".join(f"{k:>9}" for k in names) + " | s / image |"
    print(head)
    print("|" + "|".join("-" * len(c) for c in head.split("|")[1:-1]) + "|")
    for label, r in rows.items():
        cells = " | ".join(f"{r[k]:>9.3f}" for k in names)
        print(f"| {label:<32} | {cells} | {seconds[label]:>9.3f} |")
    for label, r in two_sided.items():
        cells = " | ".join(f"{r[k]:>9.3f}" for k in names)
        print(f"| {label + ' 2-sided p':<32} | {cells} | {'':>9} |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100, help="images per set")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--blocks", default="", help="extra LMD rows with these block sizes, e.g. 1,2,4")
    ap.add_argument("--scores", default=",".join(RUNS), help="rows to run (labels of the table)")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    sets = datasets(a.n, a.seed)
    runs = {k: v for k, v in RUNS.items() if k in a.scores.split(",")}
    for b in filter(None, a.blocks.split(",")):
        runs[f"lmd block {b}"] = ("lmd", {"block": int(b)})
    rows = table("color-mnist-ddpm", sets, "in-distribution", runs, a.seed)
    # The seed's finding needs data simpler than the prior's: under the untied-colour prior, flat images are.
    print("\nThe same with the untied-colour prior color-mnist-ood-ddpm (its in-distribution set: untied colours)")
    other = {k: v for k, v in sets.items() if k not in ("in-distribution",)}
    quick = {k: v for k, v in runs.items() if not k.startswith("lmd block") and not k.startswith("iwae")}
    rows_b = table("color-mnist-ood-ddpm", other, "untied", quick, a.seed)
    print("\nSeed (LMD paper, Table 1 / Table 3 MSE column), digit pairs: likelihood, LMD (LPIPS), LMD (MSE)")
    for pair, (lik, lmd_lpips, lmd_mse) in SEED_TABLE.items():
        print(f"  {pair:<15} {lik:.3f}  {lmd_lpips:.3f}  {lmd_mse:.3f}")
    if "lmd" in rows:
        worst = min(rows["lmd"].items(), key=lambda kv: kv[1])
        ok = all(v >= 0.9 for v in rows["lmd"].values())
        print(f"\nLMD >= 0.9 on every OOD set (color-mnist-ddpm): {ok} (lowest: {worst[0]} {worst[1]:.3f})")
    below = [
        (prior, k, s, v)
        for prior, table_rows in (("color-mnist-ddpm", rows), ("color-mnist-ood-ddpm", rows_b))
        for k, r in table_rows.items()
        if k.split()[0] in ("likelihood", "elbo", "iwae")
        for s, v in r.items()
        if v < 0.5
    ]
    found = ", ".join(f"{k} on {s} under {p} ({v:.3f})" for p, k, s, v in below) if below else "nowhere here"
    print(f"likelihood ranks an OOD set as more typical (AUROC < 0.5): {found}")


if __name__ == "__main__":
    main()
