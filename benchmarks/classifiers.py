"""Generative classifiers against discriminative ones: accuracy, calibration and OOD detection, in one table.

Data: color-MNIST digits (train: the recipes' training digits with tied colours; test: the held-out digits with fresh
colours; OOD: noise, rotated and constant images from :mod:`inference.ood.sets`, made from the held-out digits) and
the Gaussian mixture's points with their labels (``labels="some"``: 4 classes, the first four modes share one;
OOD: uniform points on [-5, 5]^2 and points near the octagon's centre, N(0, 0.3^2 I), where no mode lies).

Models: the IB-INN at three gamma values (thesis eq. 5.17), the NFPI flow (diagonal class Gaussians, fixed-point
updates) at lambda = 0 and lambda > 0, and discriminative baselines — on color-MNIST the shipped CNN
``digits-classifier`` (and the shipped IB-INN ``color-mnist-ib-inn``), on the mixture an MLP trained with
cross-entropy for the same steps. Metrics: error, ECE, MCE, ICE, GME in % with the thesis' bin edges
(:mod:`inference.evaluation.classifier`), and OOD ROC-AUC per set: by the predictive entropy (every model) and by the
two-sided typicality test of log p(x) (generative models; reference: half of the test set).

Usage:
    python benchmarks/classifiers.py [--steps 1000] [--gm-steps 2000] [--gammas 0.1,1,10] [--lam 2] [--threads 2]
                                     [--docs-img docs/img]
"""

from __future__ import annotations

import argparse
import time

import torch

import simulators
import zoo
from inference.evaluation.classifier import calibration, entropy
from inference.ood.pvalues import Typicality, roc_auc
from inference.ood.sets import color_mnist_sets
from zoo.generative import build_ib_inn, fit_generative
from zoo.recipes.data import colored_digits, split_digits


def color_mnist(n_test: int, seed: int):
    cm = simulators.get("color-mnist")
    train_idx, test_idx = split_digits(len(cm.digits))
    g = torch.Generator().manual_seed(seed)
    reps = [colored_digits(cm, train_idx, g, mixed=False) for _ in range(8)]  # 8 recolourings of each digit
    x, y = torch.cat([r[0] for r in reps]), torch.cat([r[1] for r in reps])
    sets, labels = color_mnist_sets(n_test, seed + 1, digits=test_idx)
    xt = sets.pop("in-distribution")
    ood = {k: sets[k] for k in ("noise", "rotated", "constant")}
    return (x, y), (xt, labels), ood


def mixture(n: int, seed: int):
    gm = simulators.get("gaussian-mixture")
    g = torch.Generator().manual_seed(seed)
    x = simulators.sample_prior(gm.prior, n, generator=g)
    y = gm.simulate(x, generator=g).argmax(-1)
    xt = simulators.sample_prior(gm.prior, 2000, generator=g)
    yt = gm.simulate(xt, generator=g).argmax(-1)
    ood = {"uniform": torch.rand(2000, 2, generator=g) * 10 - 5, "centre": 0.3 * torch.randn(2000, 2, generator=g)}
    return (x, y), (xt, yt), ood


def row(name: str, probs_fn, log_px, test, ood, seconds: float) -> dict:
    """Scores in float64 (the models are moved there first): far-out OOD inputs overflow a float32 flow."""
    xt, yt = test
    xt, ood = xt.double(), {k: v.double() for k, v in ood.items()}
    with torch.no_grad():
        p = probs_fn(xt).double().numpy()
        c = calibration(p, yt.numpy())
        h_in = entropy(p)
        out = {"model": name, "error": 100 * (1 - c.accuracy), "ece": 100 * c.ece, "mce": 100 * c.mce}
        out |= {"ice": 100 * c.ice, "gme": 100 * c.gme, "seconds": seconds}
        half = len(xt) // 2
        lp_in = log_px(xt).double().numpy() if log_px else None
        for k, xo in ood.items():
            out[f"H {k}"] = roc_auc(h_in, entropy(probs_fn(xo).double().numpy()))
            if log_px:
                t = Typicality(lp_in[:half])
                out[f"T {k}"] = roc_auc(-t.p_values(lp_in[half:]), -t.p_values(log_px(xo).double().numpy()))
    return out


def generative_rows(data, shape, classes, net, args, steps, batch, lr) -> list[dict]:
    (x, y), test, ood = data
    rows = []
    runs = [(f"IB-INN gamma={float(g):g}", "ib", float(g), 0.0) for g in args.gammas.split(",")]
    runs += [("NFPI lambda=0", "nfpi", 1.0, 0.0), (f"NFPI lambda={args.lam:g}", "nfpi", 1.0, args.lam)]
    for name, loss, gamma, lam in runs:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(args.seed)
            cov = "diagonal" if loss == "nfpi" else "identity"
            m = build_ib_inn(input_shape=shape, classes=classes, covariance=cov, **net)
        t0 = time.perf_counter()
        fit_generative(m, x, y, loss=loss, gamma=gamma, lam=lam, steps=steps, batch_size=batch, lr=lr, seed=args.seed)
        seconds = time.perf_counter() - t0
        m.double()
        rows.append(row(name, m.class_probs, m.log_prob, test, ood, seconds))
        print(f"  {name}: error {rows[-1]['error']:.2f}%, ECE {rows[-1]['ece']:.2f}%", flush=True)
    return rows


def mlp_row(data, classes, steps, seed) -> dict:
    (x, y), test, ood = data
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = torch.nn.Sequential(
            torch.nn.Linear(2, 64),
            torch.nn.ReLU(),
            torch.nn.Linear(64, 64),
            torch.nn.ReLU(),
            torch.nn.Linear(64, classes),
        )
    from zoo.training import TrainConfig, train

    g = torch.Generator().manual_seed(seed)

    def batches(step):
        i = torch.randint(len(x), (256,), generator=g)
        return x[i], y[i]

    t0 = time.perf_counter()
    train(net, lambda b, s: {"loss": torch.nn.functional.cross_entropy(net(b[0]), b[1])}, batches,
          config=TrainConfig(steps=steps, batch_size=256, lr=3e-3, warmup=50), progress=False)  # fmt: skip
    seconds = time.perf_counter() - t0
    return row("MLP (cross-entropy)", lambda v: net.double()(v).softmax(-1), None, test, ood, seconds)


def print_table(title: str, rows: list[dict]) -> None:
    keys = [k for k in rows[0] if k not in ("model", "seconds")]
    for r in rows[1:]:
        keys += [k for k in r if k not in keys and k not in ("model", "seconds")]
    print(f"\n{title}")
    print("| model | " + " | ".join(keys) + " | train s |")
    print("|---" * (len(keys) + 2) + "|")
    for r in rows:
        cells = " | ".join(f"{r[k]:.3f}" if k.startswith(("H ", "T ")) and k in r else
                           (f"{r[k]:.2f}" if k in r else "-") for k in keys)  # fmt: skip
        print(f"| {r['model']} | {cells} | {r['seconds']:.0f} |")


def directions(rows: list[dict], baseline: str) -> None:
    base = next(r for r in rows if r["model"] == baseline)
    ib = [r for r in rows if r["model"].startswith("IB-INN")]
    nf0 = next(r for r in rows if r["model"] == "NFPI lambda=0")
    nf1 = next(r for r in rows if r["model"].startswith("NFPI lambda=") and r is not nf0)
    below = all(r["mce"] < base["mce"] for r in ib)
    mces = ", ".join(f"{r['mce']:.2f}" for r in ib)
    print(f"IB-INN MCE below {baseline}'s ({base['mce']:.2f}%): {below} (IB-INN: {mces})")
    better = nf1["error"] <= nf0["error"]
    print(f"NFPI accuracy at lambda > 0 >= at lambda = 0: {better} (error {nf1['error']:.2f}% vs {nf0['error']:.2f}%)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=1000, help="training steps on color-MNIST")
    ap.add_argument("--gm-steps", type=int, default=2000, help="training steps on the Gaussian mixture")
    ap.add_argument("--gammas", default="0.1,1,10")
    ap.add_argument("--lam", type=float, default=2.0, help="NFPI lambda > 0")
    ap.add_argument("--n-test", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--docs-img", default="", help="write the shipped IB-INN's class-fiber grid into this folder")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    gm = mixture(6000, args.seed)
    rows = generative_rows(gm, (2,), 4, {"blocks": 4, "hidden": 32}, args, args.gm_steps, 256, 3e-3)
    rows.append(mlp_row(gm, 4, args.gm_steps, args.seed))
    print_table(f"Gaussian mixture (4 label classes), {args.gm_steps} steps", rows)
    directions(rows, "MLP (cross-entropy)")

    cm = color_mnist(args.n_test, args.seed)
    rows = generative_rows(cm, (3, 16, 16), 10, {}, args, args.steps, 64, 1e-3)
    for name in ("digits-classifier", "color-mnist-ib-inn"):
        s = zoo.load(name, role="subject").double()
        log_px = s.log_prob if hasattr(s, "log_prob") else None
        rows.append(row(f"{name} (shipped)", lambda v, s=s: s(v).softmax(-1), log_px, cm[1], cm[2], 0.0))
    print_table(f"color-MNIST (held-out digits), {args.steps} steps", rows)
    directions(rows, "digits-classifier (shipped)")
    if args.docs_img:
        from inference.plots import class_fiber_grid, save_figures

        ib = zoo.load("color-mnist-ib-inn", role="subject")
        g = torch.Generator().manual_seed(args.seed)
        with torch.no_grad():
            fibers = torch.stack([ib.sample_class(k, 8, generator=g, temperature=0.7).clamp(0, 1) for k in range(10)])
        title = "color-mnist-ib-inn class fibers: x = g^-1(z), z ~ N(mu_y, 0.7^2 I), one row per digit"
        print("wrote", *save_figures({"class_fibers": class_fiber_grid(fibers.numpy(), title=title)}, args.docs_img))


if __name__ == "__main__":
    main()
