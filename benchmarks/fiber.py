"""Fiber sampling on color-MNIST: NDTM (tied and OOD prior) and the conditional fiber model, fidelity vs consistency.

Setup (Rousselot et al. 2026, section 4.1 / app. B.1, scaled to 16x16 and a CPU): subject ``color-mnist-ae``
(phi(x) = encoder(decolorize(x)), trained to tell the channels apart, so that its fiber is close to the exact one,
the recolorings of x; ``inference.evaluation.color_mnist.channel_sensitivity`` measures how close); priors
``color-mnist-ddpm`` (digit color tied to background) and ``color-mnist-ood-ddpm`` (independent colors). Targets are
K distinct digits colored with c0 ~ p(c0); the nearest-neighbour baselines search a reference set of other distinct
digits (no recoloring of a target is in it: that would be an exact fiber member), each under its own map.

Prints the unguided prior's background-color KL to p(c0) (with the floor of as many exact draws) and one table: per
method and strength, the mean fiber loss under the subject and under the exact map ``decolorize``, each as a multiple
of the nearest neighbour's under the same map; the share of sample channels whose digit colour is tied to the
background ((c0 + 0.5) mod 1, within 0.05); mean log p(c0) of the backgrounds; the per-target background spread; and
the background-color KL and W2 to p(c0) of all samples pooled (with the floor: the same statistics for exact fiber
samples of that size). Then the speed of NDTM against the bound set by the prior alone, T (N fwd+bwd + 1 fwd) UNet
passes per sample, timed in the same run. Writes the trade-off plot (paper fig. 4, fidelity under the exact map) and a
fiber grid (paper figs. 5-6). NDTM runs with ``zoo fiber``'s defaults (:class:`NDTMOptions`) unless told otherwise.

Usage:
    python benchmarks/fiber.py [--targets 16] [--n 3] [--steps 50] [--inner-steps 4] [--gammas 30,100,300]
                               [--schedule mid] [--lambdas 0,0.1,1] [--fm-steps 500] [--speed-batch 32]
                               [--threads 1] [--refine-steps 100] [--out benchmarks/out] [--docs-img docs/img]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

import simulators
import zoo
from inference.evaluation.color_mnist import (
    SMALL_SAMPLE_BINS,
    TIE_TOLERANCE,
    background_spread,
    color_consistency,
    color_tie_errors,
    decolorize_fiber_loss,
    decolorize_nearest_neighbour,
)
from inference.fibers import FiberDraws, RefineOptions, sample_fibers
from inference.fibers.conditional import FiberModelOptions
from inference.fibers.metrics import augment, nearest_neighbour, subject_fiber_loss
from inference.fibers.ndtm import NDTMOptions
from inference.fibers.refine import refine_draws
from inference.plots import fiber_grid, fidelity_consistency, save_figures
from simulators.color_mnist import background_color, color_log_prob, colorize, decolorize, sample_colors

# Paper reference (Table 5, ImageNet / DINOv2): NDTM 273 vs nearest neighbour 1225 vs augmented 440 -> 4.5x.
PAPER_NN_RATIO = 1225 / 273


def colored(digits: torch.Tensor, idx: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return colorize(digits[idx], sample_colors((len(idx),), generator=g))


def row(method, strength, samples, loss, x, nn, seconds, g) -> dict:
    """Metrics of fiber samples (n, K, 3, H, W) with fiber losses (n, K) under the subject; ``nn`` holds the
    nearest neighbour's mean loss under the subject and under ``decolorize``."""
    m = loss.numel()
    flat = samples.reshape(-1, *samples.shape[2:])
    cc = color_consistency(flat, generator=g, bins=SMALL_SAMPLE_BINS)
    dec = decolorize_fiber_loss(samples, x)
    tie = color_tie_errors(samples, decolorize(x).mean(-3))
    return {
        "method": method,
        "strength": strength,
        "fiber_loss": float(loss.mean()),
        "fiber_se": float(loss.std() / math.sqrt(m)) if m > 1 else float("nan"),
        "fiber_ratio": float(loss.mean() / nn["subject"]),
        "decolorize": float(dec.mean()),
        "decolorize_median": float(dec.median()),
        "decolorize_ratio": float(dec.mean() / nn["decolorize"]),
        "tied": float((tie < TIE_TOLERANCE).float().mean()),
        "log_p": float(color_log_prob(background_color(flat)).mean()),
        "spread": float(background_spread(samples).mean()),
        "kl": cc.kl,
        "kl_floor": cc.kl_floor,
        "w2": cc.w2,
        "w2_floor": cc.w2_floor,
        "seconds": seconds,
        "per_s": m / seconds if seconds > 0 else float("inf"),
    }


def prior_only_seconds(prior, batch: int, steps: int, inner_steps: int) -> float:
    """Seconds of the prior's own share of NDTM: T (N fwd+bwd + 1 fwd) UNet passes at this batch size.

    The passes run as a loop over the same timesteps as the sampler (the gradient in the input, as for u_t), so
    the bound sees the same machine load as the NDTM run it is compared with.
    """
    x = torch.randn(batch, *prior.shape)
    ts = prior.timesteps(steps)
    t0 = time.perf_counter()
    for t in ts[:-1]:
        xg = x.clone().requires_grad_(True)
        for _ in range(inner_steps):
            torch.autograd.grad(prior.model_output(xg, t).pow(2).sum(), xg)
        with torch.no_grad():
            prior.model_output(x, t)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", type=int, default=16, help="distinct target digits K")
    ap.add_argument("--n", type=int, default=3, help="fiber samples per target")
    ap.add_argument("--reference", type=int, default=1000, help="nearest-neighbour reference set size")
    ap.add_argument("--steps", type=int, default=NDTMOptions.num_steps, help="denoising steps T")
    ap.add_argument("--inner-steps", type=int, default=NDTMOptions.inner_steps, help="N")
    ap.add_argument("--gammas", default="30,100,300", help="guidance strengths (zoo fiber's default: 100)")
    ap.add_argument("--schedule", default=NDTMOptions.schedule)
    ap.add_argument("--lambdas", default="0,0.1,1", help="fiber-loss weights of the conditional model ('' skips)")
    ap.add_argument("--fm-steps", type=int, default=500, help="training steps of each conditional model")
    ap.add_argument("--speed-batch", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--refine-steps", type=int, default=100, help="latent refinement steps (app. A); 0 skips")
    ap.add_argument("--refine-lr", type=float, default=0.05)
    ap.add_argument("--refine-dim", type=int, default=96, help="PCA latent of the refinement autoencoder")
    ap.add_argument("--prior-draws", type=int, default=480, help="unguided prior draws for its color KL")
    ap.add_argument("--out", default="benchmarks/out")
    ap.add_argument("--docs-img", default="", help="also write the trade-off plot here, e.g. docs/img (default: not)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    out = Path(a.out)

    phi = zoo.load("color-mnist-ae", role="subject")
    priors = {
        "NDTM": zoo.load("color-mnist-ddpm", role="prior"),
        "NDTM w/ OOD": zoo.load("color-mnist-ood-ddpm", role="prior"),
    }
    cm = simulators.get("color-mnist")
    g = torch.Generator().manual_seed(a.seed)
    perm = torch.randperm(len(cm.digits), generator=g)
    x = colored(cm.digits, perm[: a.targets], g)
    ref = colored(cm.digits, perm[a.targets : a.targets + a.reference], g)
    nn = nearest_neighbour(phi, x, ref)
    aug = augment(x, 8, generator=g)
    aug_loss = subject_fiber_loss(phi, aug, x)
    rows = []
    exact = cm.fiber_sample(x, a.n, generator=g)
    nn_mean = {"subject": float(nn.loss.mean()), "decolorize": float(decolorize_nearest_neighbour(x, ref).mean())}
    rows.append(row("exact fiber (decolorize)", 0.0, exact, subject_fiber_loss(phi, exact, x), x, nn_mean, 0.0, g))
    aug_mean = float(aug_loss.mean())

    # The prior alone, under the sampler NDTM uses (DDPM ancestral, T steps): does it know p(c0)?
    draws = priors["NDTM"].sample(a.prior_draws, num_steps=a.steps, generator=g).clamp(0, 1)
    prior_kl = color_consistency(draws, generator=g, bins=SMALL_SAMPLE_BINS)
    prior_logp = float(color_log_prob(background_color(draws)).mean())
    exact_logp = float(color_log_prob(sample_colors((a.prior_draws,), generator=g)).mean())

    # Appendix A: refinement in the latent of a PCA autoencoder of the reference set (never pixels).
    refine_options = RefineOptions(a.refine_steps, a.refine_lr, a.refine_dim) if a.refine_steps > 0 else None

    def fibers(method: str, seed: int, **kw):
        """One run of the library's fiber pipeline on the benchmark's targets and reference set."""
        gen = torch.Generator().manual_seed(seed)
        r = sample_fibers(
            phi, x, a.n, method=method, reference=ref, generator=gen, seed=seed, batch_size=a.batch_size, **kw
        )
        return torch.as_tensor(r.samples[0]), torch.as_tensor(r.fiber_loss[0]), r

    def refine(s: torch.Tensor, loss: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d = refine_draws(FiberDraws(s, loss), phi, x, reference=ref, options=refine_options, clip=(0.0, 1.0))
        return d.samples, d.fiber_loss

    results = {}
    refined = []
    for name, prior in priors.items():
        for gamma in [0.0] + [float(v) for v in a.gammas.split(",")]:
            o = NDTMOptions(num_steps=a.steps, inner_steps=a.inner_steps, gamma=gamma, schedule=a.schedule)
            s, loss, res = fibers("ndtm", a.seed + 1, prior=prior, options=o)
            sec = res.wall_time_s
            label = f"{name}" if gamma > 0 else f"{name} (unguided)"
            rows.append(row(label, gamma, s, loss, x, nn_mean, sec, g))
            results[(name, gamma)] = res
            print(f"  {label} gamma={gamma:g}: fiber loss {rows[-1]['fiber_loss']:.4g} in {sec:.0f} s", flush=True)
            if refine_options is not None and name == "NDTM" and gamma > 0:
                t0 = time.perf_counter()
                s_r, loss_r = refine(s, loss)
                sec_r = sec + time.perf_counter() - t0
                refined.append(row("NDTM + refine", gamma, s_r, loss_r, x, nn_mean, sec_r, g))
                print(f"  NDTM + refine gamma={gamma:g}: fiber loss {refined[-1]['fiber_loss']:.4g}", flush=True)
        rows += refined  # the refined rows right after the rows they refine
        refined = []

    # Ablations at the default gamma, each against the defaults: zoo's departures from the paper's appendix C put
    # back one at a time (the guidance window t/T in [0.4, 0.7] with 0.5 outside, Adam, both; the re-noised target
    # h_t at every step, renoise_until=0), and the static target phi(x) at every step.
    top = NDTMOptions.gamma
    paper_window = {"mid": (0.4, 0.7), "outside": 0.5}
    ablations = {
        "NDTM, paper window": paper_window,
        "NDTM, Adam": {"optimizer": "adam"},
        "NDTM, paper window + Adam": {**paper_window, "optimizer": "adam"},
        "NDTM, re-noised h_t to t=0": {"renoise_until": 0.0},
        "NDTM, static target": {"renoise_target": False},
    }
    for label, kw in ablations.items():
        o = NDTMOptions(num_steps=a.steps, inner_steps=a.inner_steps, gamma=top, schedule=a.schedule, **kw)
        s, loss, res = fibers("ndtm", a.seed + 1, prior=priors["NDTM"], options=o)
        sec = res.wall_time_s
        rows.append(row(label, top, s, loss, x, nn_mean, sec, g))
        print(f"  {label} gamma={top:g}: fiber loss {rows[-1]['fiber_loss']:.4g}", flush=True)
        if refine_options is not None and kw.get("renoise_until") == 0.0:  # refinement also repairs the outliers
            t0 = time.perf_counter()
            s_r, loss_r = refine(s, loss)
            sec_r = sec + time.perf_counter() - t0
            rows.append(row("NDTM, h_t to t=0 + refine", top, s_r, loss_r, x, nn_mean, sec_r, g))
            print(f"  NDTM, h_t to t=0 + refine gamma={top:g}: fiber loss {rows[-1]['fiber_loss']:.4g}", flush=True)

    lambdas = [float(v) for v in a.lambdas.split(",")] if a.lambdas else []
    for lam in lambdas:
        opts = {"fiber_weight": lam, "train.steps": a.fm_steps, "max_collapse": 1e9}  # report, never refuse
        s, loss, res = fibers(
            "conditional", a.seed + 2, options=opts, data=lambda n, gen: cm.sample(n, generator=gen)
        )  # trains on fresh simulator draws, then samples; the time covers both
        r = row("conditional fiber model", lam, s, loss, x, nn_mean, res.wall_time_s, g)
        r["train_s"] = res.wall_time_s
        r["gap"] = res.method_options["likelihood_gap"]
        rows.append(r)
        print(
            f"  conditional lambda={lam:g}: fiber loss {r['fiber_loss']:.4g}, likelihood gap {r['gap']:.2f} nats/dim "
            f"({'collapsed: zoo fiber refuses it' if r['gap'] > FiberModelOptions.max_collapse else 'kept'}; "
            f"{res.wall_time_s:.0f} s)",
            flush=True,
        )

    # ---- table ----
    print(
        f"\ncolor-MNIST fibers: K={a.targets} targets x n={a.n} samples, T={a.steps}, N={a.inner_steps}, "
        f"schedule={a.schedule}, renoise_until={NDTMOptions.renoise_until}, reference={a.reference}, "
        f"refine: {a.refine_steps} steps in a {a.refine_dim}-d PCA latent, threads={a.threads}"
    )
    print(
        f"nearest neighbour: {nn_mean['subject']:.4g} under the subject, {nn_mean['decolorize']:.4g} under decolorize "
        f"(each the nearest under its own map); augmented copies {aug_mean:.4g} under the subject"
    )
    print(
        f"unguided prior, {a.prior_draws} draws: color KL {prior_kl.kl:.3f} (floor {prior_kl.kl_floor:.3f} = exact "
        f"draws of p(c0); {prior_kl.kl / prior_kl.kl_floor:.1f}x), mean log p(c0) {prior_logp:.2f} "
        f"(exact {exact_logp:.2f})"
    )
    head = (
        f"{'method':28s} {'strength':>8s} {'subject loss':>16s} {'x NN':>7s} {'decolorize':>10s} {'x NN':>7s}"
        f" {'tied':>5s} {'log p(c0)':>9s} {'spread':>6s} {'KL (floor)':>15s} {'W2 (floor)':>15s} {'samples/s':>10s}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['method']:28s} {r['strength']:8g} {r['fiber_loss']:9.4g} ± {r['fiber_se']:<5.2g}"
            f" {r['fiber_ratio']:7.3f} {r['decolorize']:10.3g} {r['decolorize_ratio']:7.3f} {r['tied']:5.2f}"
            f" {r['log_p']:9.2f} {r['spread']:6.3f} {r['kl']:7.3f} ({r['kl_floor']:.3f})"
            f" {r['w2']:7.3f} ({r['w2_floor']:.3f}) {r['per_s']:10.3g}"
        )
    print(
        "x NN: mean loss / the nearest neighbour's under the same map; tied: share of sample channels whose digit "
        f"colour is within {TIE_TOLERANCE} of (c0 + 0.5) mod 1; spread: per target, the background-colour spread of "
        "its samples (exact fiber: the first row)"
    )
    print(
        f"paper (Table 5, ImageNet/DINOv2): NDTM {273} vs nearest neighbour {1225} -> {PAPER_NN_RATIO:.1f}x; "
        "fig. 4 (color-MNIST) gives no numbers in the text"
    )

    # ---- speed against the UNet-pass bound ----
    # Bound and NDTM alternate twice, so that both see the same (shared-machine) load; means of the two runs.
    prior = priors["NDTM"]
    o = NDTMOptions(num_steps=a.steps, inner_steps=a.inner_steps, gamma=100.0, schedule="constant")
    xs = x[torch.arange(a.speed_batch) % len(x)]
    prior_only_seconds(prior, a.speed_batch, 1, 1)  # warm-up
    t_bound, t_ndtm = [], []
    for rep in range(2):
        t_bound.append(prior_only_seconds(prior, a.speed_batch, a.steps, a.inner_steps))
        res = sample_fibers(
            phi, xs, 1, method="ndtm", prior=prior, options=o, reference=None, seed=rep, batch_size=a.speed_batch
        )
        t_ndtm.append(res.wall_time_s)
    bound = a.speed_batch / (sum(t_bound) / 2)
    meas = a.speed_batch / (sum(t_ndtm) / 2)
    print(
        f"\nspeed (batch {a.speed_batch}, T={a.steps}, N={a.inner_steps}, {a.threads} thread(s), CPU): "
        f"prior alone, T (N fwd+bwd + 1 fwd) UNet passes: {bound:.3g} samples/s (runs: "
        f"{', '.join(f'{v:.1f}' for v in t_bound)} s); NDTM {meas:.3g} samples/s (runs: "
        f"{', '.join(f'{v:.1f}' for v in t_ndtm)} s) = {100 * meas / bound:.0f}% of the bound "
        "(constant schedule: guidance at every step)"
    )

    # ---- plots ----
    plotted = ("NDTM", "NDTM + refine", "NDTM w/ OOD", "conditional fiber model")
    plot_rows = [r for r in rows if r["method"] in plotted]
    figs = {
        "fiber_tradeoff": fidelity_consistency(
            plot_rows,
            title="color-MNIST: fidelity (exact map) vs consistency",
            fidelity="decolorize",
            xlabel="fiber loss under decolorize (the exact fiber)",
            baseline=nn_mean["decolorize"],
        )
    }
    strengths = [float(v) for v in a.gammas.split(",")]
    shown = NDTMOptions.gamma if NDTMOptions.gamma in strengths else max(strengths)  # the default when it ran
    fib = results[("NDTM", shown)]
    figs["fiber_grid"] = fiber_grid(fib, max_samples=a.n)
    paths = save_figures(figs, out)
    if a.docs_img:
        paths += save_figures({"fiber_tradeoff": figs["fiber_tradeoff"]}, a.docs_img, dpi=80)
    for p in paths:
        print(f"wrote {p}")


if __name__ == "__main__":
    main()
