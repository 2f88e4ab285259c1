"""The fiber pipeline: a subject, targets and a method in, :class:`~inference.results.FiberSamples` out.

:func:`sample_fibers` is what ``zoo fiber`` and ``benchmarks/fiber.py`` call. It resolves the subject and prior
(names, directories or loaded models), the reference set (inputs by index, the nearest-neighbour baseline, the
training data of methods that train), checks every input before any sampling, runs the registered fiber method,
optionally refines the samples (appendix A), and packages them with their baselines and provenance.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import simulators
import zoo
from inference.fibers.checks import check_compatible, check_subject, input_range
from inference.fibers.metrics import augment, features, nearest_neighbour, subject_fiber_loss
from inference.fibers.refine import RefineOptions, refine_draws
from inference.fibers.registry import FiberDraws, fiber_method_spec, make_fiber_options
from inference.options import options_dict
from inference.results import FiberSamples
from simulators.devices import check_device
from simulators.files import load_npy
from zoo import Prior, Subject

REFERENCE_SEED = 12345  # seed of the default color-MNIST reference set


def reference_set(spec: str | os.PathLike | torch.Tensor, n: int = 1000) -> torch.Tensor:
    """The reference dataset for inputs by index and the nearest-neighbour baseline, shape (M, C, H, W).

    ``spec`` is ``"color-mnist"``, a ``.npy`` file of shape (M, C, H, W) or such a tensor. The color-MNIST set holds
    n distinct digits (a seeded permutation of the embedded set), each colored once with c0 ~ p(c0): no image has a
    recoloring of itself in the set, which would be an exact fiber member rather than a nearest neighbour.
    """
    if isinstance(spec, torch.Tensor):
        ref = spec
    elif str(spec) == "color-mnist":
        from simulators.color_mnist import colorize, sample_colors

        digits = simulators.get("color-mnist").digits
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(digits):
            raise ValueError(f"--reference-size must be in [1, {len(digits)}] for color-mnist, got {n!r}")
        g = torch.Generator().manual_seed(REFERENCE_SEED)
        idx = torch.randperm(len(digits), generator=g)[:n]
        return colorize(digits[idx], sample_colors((n,), generator=g))
    else:
        path = Path(spec)
        if not path.is_file():
            raise FileNotFoundError(f"reference {str(spec)!r} is neither 'color-mnist' nor an existing .npy file")
        ref = torch.as_tensor(load_npy(path, "reference images (M, C, H, W)"), dtype=torch.float32)
    if ref.ndim != 4 or len(ref) == 0:
        raise ValueError(
            f"reference {str(spec)[:60]!r} must have shape (M, C, H, W) with M >= 1, got {tuple(ref.shape)}"
        )
    if not bool(torch.isfinite(ref).all()):
        raise ValueError(f"reference {str(spec)[:60]!r} contains NaN or infinite values")
    return ref


def training_data(spec: Any, reference: torch.Tensor) -> Callable[[int, torch.Generator], torch.Tensor]:
    """Training images for methods that train: fresh simulator draws for color-mnist, else reference rows."""
    if isinstance(spec, str) and spec == "color-mnist":
        cm = simulators.get("color-mnist")
        return lambda n, g: cm.sample(n, generator=g).to(reference.device)
    return lambda n, g: reference[torch.randint(len(reference), (n,), generator=g).to(reference.device)]


def sample_fibers(
    subject: Subject | str,
    x: torch.Tensor | int,
    n: int = 16,
    *,
    method: str = "ndtm",
    prior: Prior | str | None = None,
    options: Any = None,
    reference: str | os.PathLike | torch.Tensor | None = "color-mnist",
    reference_size: int = 1000,
    refine: RefineOptions | None = None,
    data: Callable[[int, torch.Generator], torch.Tensor] | None = None,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    subject_options: dict[str, Any] | None = None,
    trust_code: bool = False,
    source: str | None = None,
    progress: bool = False,
) -> FiberSamples:
    """Sample the fiber {x~ : phi(x~) = phi(x)} of a subject through one or more targets.

    Arguments:
        subject: a :class:`zoo.Subject`, or what :func:`zoo.load` takes (a name, a directory, ...).
        x: the targets (B, *shape), or an index into the reference set.
        n: samples per target.
        method: a registered fiber method (:func:`inference.fibers.fiber_methods`).
        prior: the prior of methods that guide one (a :class:`zoo.Prior`, or a name / directory).
        options: the method's options (dataclass, dict or ``None``).
        reference: the reference set (see :func:`reference_set`): inputs by index, the nearest-neighbour baseline
            and the training data of methods that train; ``None``: no reference (no neighbour baseline).
        reference_size: images in a ``"color-mnist"`` reference set.
        refine: refine the samples in a PCA latent of the reference set (:class:`RefineOptions`), or ``None``.
        data: ``data(n, generator) -> images``, the training data of methods that train (default: fresh
            color-MNIST draws for the ``"color-mnist"`` reference, else rows of the reference set).
        generator: randomness of the method (default: a generator seeded with ``seed`` or 0).
        seed: the seed, recorded in the result and used for the augmentation baseline (``seed + 2``).
        batch_size: samples processed together by the method.
        device: where subject, prior and samples live.
        subject_options: ``output`` / ``layer`` (and ``weights`` of a ``package.module:factory``; ``input_range``
            ``(lo, hi)`` for subjects that do not record it) of a subject given by
            name.
        trust_code: let :func:`zoo.load` run the code a subject or prior given by name carries (TorchScript,
            ``torch.export``, ``package.module:factory``).
        source: how the targets were given (recorded; default: the reference index, or ``"tensor"``).
        progress: show progress bars.

    Returns:
        the :class:`~inference.results.FiberSamples` with nearest-neighbour and augmentation baselines.

    Raises:
        ValueError / FileNotFoundError: bad input, in one line, before any sampling.
    """
    spec = fiber_method_spec(method)
    opts = make_fiber_options(method, options)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"-n must be >= 1, got {n!r}")
    device = check_device(device)
    subject_name = subject if isinstance(subject, str) else type(subject).__name__
    so = dict(subject_options or {})
    given_range = so.pop("input_range", None)
    if isinstance(subject, str):
        subject = zoo.load(subject, role="subject", device=device, trust_code=trust_code, **so)
    if given_range is not None:  # --input-range: for files that do not record it (TorchScript, .pt2, factories)
        recorded = input_range(subject)
        if recorded is not None and tuple(recorded) != tuple(given_range):
            raise ValueError(f"--input-range {given_range} contradicts the subject's recorded range {recorded}")
        subject.meta.setdefault("input", {})["range"] = [float(given_range[0]), float(given_range[1])]
    if spec.needs_prior and prior is None:
        raise ValueError(f"--method {method} needs --prior NAME_OR_PATH (a diffusion or flow-matching prior)")
    prior_name = prior if isinstance(prior, str) else type(prior).__name__ if prior is not None else None
    if isinstance(prior, str) and spec.needs_prior:
        prior = zoo.load(prior, role="prior", device=device, trust_code=trust_code)
    ref = None if reference is None else reference_set(reference, reference_size).to(device)
    x, source = _targets(x, ref, source)
    x = x.to(device)
    if ref is not None and tuple(ref.shape[1:]) != tuple(x.shape[1:]):
        raise ValueError(f"the reference images have shape {tuple(ref.shape[1:])}, the input {tuple(x.shape[1:])}")
    _check_range(x, subject)
    if spec.needs_prior:
        check_compatible(prior, subject, x)  # every bad-input error before any sampling
    else:
        check_subject(subject, x)
    if refine is not None and ref is None:
        raise ValueError("--refine fits its autoencoder to the reference set; give --reference")
    if refine is not None and not refine.latent_dim <= min(len(ref), x[0].numel()):
        raise ValueError(f"--refine-dim must be in [1, {min(len(ref), x[0].numel())}] for this reference set")
    if data is None and ref is not None:
        data = training_data(reference, ref)
    g = generator if generator is not None else torch.Generator().manual_seed(0 if seed is None else seed)
    t0 = time.perf_counter()
    draws = spec.sample_fn(
        subject, x, n, prior=prior, options=opts, data=data, generator=g, batch_size=batch_size, progress=progress
    )
    if refine is not None:
        clip = input_range(subject) or (input_range(prior) if spec.needs_prior else None)
        draws = refine_draws(draws, subject, x, reference=ref, options=refine, clip=clip)
    ref_name = "tensor" if isinstance(reference, torch.Tensor) else None if reference is None else str(reference)
    record = {
        "method": spec.name,
        "subject": subject_name + "".join(f" {k}={v}" for k, v in so.items() if v),
        "prior": prior_name if spec.needs_prior else f"{spec.name} fiber model (trained in this run)",
        "method_options": {**options_dict(opts), **draws.info, "input": source, "reference": ref_name, "n": n},
        "seed": seed,
        "wall_time_s": time.perf_counter() - t0,
    }
    return _package(draws, subject, x, ref, record)


def _check_range(x: torch.Tensor, subject: Subject) -> None:
    """Refuse inputs outside the range the subject records for its inputs (e.g. [0, 1] images given as 0..255)."""
    r = input_range(subject)
    if r is None:
        return
    lo, hi = r
    slack = 0.01 * (hi - lo)
    got = float(x.min()), float(x.max())
    if got[0] < lo - slack or got[1] > hi + slack:
        raise ValueError(
            f"the input's values span [{got[0]:.4g}, {got[1]:.4g}], outside the subject's input range [{lo:g}, {hi:g}]"
        )


def _targets(x: torch.Tensor | int, ref: torch.Tensor | None, source: str | None) -> tuple[torch.Tensor, str]:
    if isinstance(x, int) and not isinstance(x, bool):
        if ref is None:
            raise ValueError("an input index needs a reference set (--reference)")
        if not 0 <= x < len(ref):
            raise ValueError(f"--input index {x} is outside the reference set of {len(ref)} images")
        return ref[x : x + 1].clone(), source or f"reference[{x}]"
    x = torch.as_tensor(x)
    if x.ndim == 3:
        x = x[None]
    if x.ndim < 2 or not x.is_floating_point():
        raise ValueError(f"targets must be floating-point images (B, C, H, W), got {x.dtype} of shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("the targets contain NaN or infinite values")
    return x, source or "tensor"


def _package(
    draws: FiberDraws, subject: Subject, x: torch.Tensor, ref: torch.Tensor | None, record: dict
) -> FiberSamples:
    """The result object: draws, the nearest-neighbour and augmentation baselines, and the provenance ``record``."""
    if not (bool(torch.isfinite(draws.samples).all()) and bool(torch.isfinite(draws.fiber_loss).all())):
        raise ValueError(
            "the fiber samples hold NaN or inf (the guidance diverged): lower gamma or the step sizes; nothing written"
        )
    baselines, neighbour = {}, None
    if ref is not None:
        nn = nearest_neighbour(subject, x, ref, h_reference=features(subject, ref))
        baselines["nearest_neighbour"], neighbour = nn.loss.cpu(), nn.image.cpu()
    seed = record["seed"]
    aug = augment(x, 8, generator=torch.Generator().manual_seed((0 if seed is None else seed) + 2))
    baselines["augmented"] = subject_fiber_loss(subject, aug, x).mean(0).cpu()
    return FiberSamples(
        samples=draws.samples[None].cpu(),
        target=x.cpu(),
        fiber_loss=draws.fiber_loss[None].cpu(),
        traces={k: v[None].cpu() for k, v in draws.traces.items()},
        gamma=draws.gamma,
        baselines=baselines,
        neighbour=neighbour,
        augmented=aug[0].cpu(),
        **record,
    )


__all__ = ["REFERENCE_SEED", "RefineOptions", "reference_set", "sample_fibers", "training_data"]
