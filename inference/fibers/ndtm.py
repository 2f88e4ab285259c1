"""NDTM fiber guidance: sample the fiber of a subject phi through h by guiding a pretrained diffusion prior.

Non-linear diffusion trajectory matching (Pandey et al. 2025) as used for invariance sampling by Rousselot et al.
(2026, section 3.2 and appendix C). The guided sampler alternates a correction and a denoising step (eqs. 8-9):

    x^_t    = x_t + gamma_t u_t
    x_{t-1} = DenoisingStep(x^_t)

where, at every step, the control u_t starts at zero and takes N optimizer steps on (eq. 10 / 22)

    L(u_t) = L_terminal + kappa_t ||u_t||^2 + tau_t ||score(x_t + gamma_t u_t) - score(x_t)||^2,
    L_terminal = ||phi(E[x_0 | x^_t]) - h_t||^2                         (the fiber loss on the Tweedie estimate).

The target h_t is, by default, the paper's modification (eqs. 11-12): with the input x available,
h_t = phi(E[x_0 | x'_t]) with x'_t ~ q(x_t | x_0 = x), so that both sides of the fiber loss are seen at the same
level of detail; with ``renoise_target=False`` (or only features h given) it is the static h = phi(x).

Departure from the paper (``renoise_until``, default 0.3): below t/T = 0.3 the target is the static phi(x). At small
t the re-noised estimate E[x_0 | x'_t] is already detailed, so for a smooth subject h_t ~ phi(x) there anyway; but a
subject that is discontinuous where the data has mass turns the small noise of x'_t into jumps of h_t. On
color-MNIST, ``decolorize`` divides by ((c + 0.5) mod 1) - c, which flips sign at a background channel c = 0.5, the
mode of a p(c0) component (35 % of channels): ||h_t - phi(x)||^2 stays ~10-70 down to t = 0 for such targets
(~0-6 for the others), a few samples follow the flipped target into an inverted color channel, and those few
dominate the mean fiber loss (benchmarks/fiber.py with wave 1's subject, prior and the paper's guidance window,
gamma = 100: mean 15.9, median 1.06, max 243 with ``renoise_until=0``; mean 1.28, max 3.2 with 0.3).
``renoise_until=0`` restores the paper's form.

Defaults from appendix C: kappa_t = 1e-4, tau_t = 0, a learning rate decaying linearly from 2e-3 to 0, N = 8 inner
steps (the top of the paper's 4-8). zoo's own (measured in docs/fibers.md): gamma = 100 (not given there); guidance
strongest on t/T in [0, 0.3], 0.1 elsewhere (the paper: [0.4, 0.7]); and u_t optimized by normalized gradient
descent (each sample's gradient scaled to unit RMS) instead of Adam. Both departures keep guidance from moving what
the subject barely depends on: at mid noise the Tweedie estimate is blurry, and a fiber loss that compares contrasts
pulls the image's global colours (on color-MNIST, the background) to wherever a blurry estimate scores best; Adam
moves every pixel by ~lr whatever its share of the gradient. With both put back, the background colours of
color-MNIST fiber samples drift far from p(c0).

Cost: per sample and denoising step, N forward+backward passes of the prior and the subject plus one forward pass
of the prior, i.e. T (N fwd+bwd + 1 fwd) network passes per fiber sample, plus one prior and subject pass at each
step with t/T >= ``renoise_until`` for the re-noised target (35 of 50 at the defaults). kappa = 1e-4 is nearly inert.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from inference.fibers.checks import check_compatible
from inference.fibers.registry import FiberDraws, register_fiber_method
from zoo.priors import DiffusionPrior
from zoo.subjects import Subject

SCHEDULES = ("constant", "mid", "mid+end")


class NormalizedGD(torch.optim.Optimizer):
    """Gradient descent with each sample's gradient scaled to unit root-mean-square over its elements.

    A step moves a sample's pixels by lr on average, in proportion to their gradients: unlike Adam, which moves every
    pixel by ~lr whatever its share of the gradient, pixels the loss barely depends on barely move.
    """

    def __init__(self, params, lr: float) -> None:
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                rms = p.grad.flatten(1).pow(2).mean(-1).sqrt().clamp(min=1e-30)
                p.sub_(group["lr"] * p.grad / rms.view(-1, *([1] * (p.ndim - 1))))


OPTIMIZER_CLASSES = {"normalized": NormalizedGD, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}
"""The optimizers of the NDTM control u_t by name (``NDTMOptions.optimizer``)."""


@dataclass(frozen=True)
class NDTMOptions:
    """Settings of NDTM guidance (defaults: Rousselot et al. 2026, appendix C, except gamma, which it does not give,
    the guidance window ``mid`` / ``outside`` and the optimizer: zoo's, measured on color-MNIST in docs/fibers.md).

    Attributes:
        num_steps: denoising steps T of the sampler (the scheduler's own spacing).
        inner_steps: optimizer steps N on u_t per denoising step (the paper uses 4-8).
        gamma: the guidance strength; gamma_t = gamma * w(t) with the schedule's weight w. 0 is unguided sampling.
            Default 100: calibrated on the shipped pair (docs/fibers.md); the scale depends on the subject.
        schedule: ``"constant"`` (w = 1), ``"mid"`` (w = 1 on t/T in ``mid``, ``outside`` elsewhere) or
            ``"mid+end"`` (as ``"mid"``, and rising linearly to ``end`` over the last ``end_from`` of the
            trajectory: "increasing gamma_t towards the end ... can help to reduce the fiber loss further").
        mid: the interval of t/T where guidance is strongest (the paper: t in [700, 400] of 1000, i.e. (0.4, 0.7);
            zoo: (0, 0.3), after the prior has settled the image's global colours — guiding them at mid noise,
            through a blurry Tweedie estimate, drags them off p(c0)).
        outside: the weight of gamma_t outside ``mid`` (the paper does not say; zoo: 0.1).
        end: the weight reached at t = 0 with ``"mid+end"``.
        end_from: t/T below which the weight rises to ``end`` with ``"mid+end"``.
        kappa: kappa_t, weight of the control cost ||u_t||^2.
        tau: tau_t, weight of the score-change cost (0 skips its extra network pass).
        lr: learning rate of u_t at the first step; it decays linearly to 0 at the last.
        optimizer: ``"normalized"`` (default: gradient descent with each sample's gradient scaled to unit RMS, so
            pixels move in proportion to their share of the gradient, lr on average), ``"adam"`` (the reference
            NDTM code: every pixel moves by ~lr whatever its share, which drifts backgrounds the loss barely
            depends on) or ``"sgd"`` (plain gradient descent: the step scales with the subject's loss).
        renoise_target: the paper's modification: h_t = phi(E[x_0 | x'_t]), x'_t ~ q(x_t | x_0 = x) (needs x).
        renoise_until: t/T below which the static target phi(x) replaces the re-noised h_t (0: re-noised at
            every step, the paper's form; default 0.3: see the module docstring). For a subject that is
            discontinuous where the data has mass, the noise of x'_t flips h_t between branches even at small t.
        eta: DDIM noise (``None``: the scheduler's own sampler; see :meth:`zoo.DiffusionPrior.step`).
    """

    num_steps: int = 50
    inner_steps: int = 8
    gamma: float = 100.0
    schedule: str = "mid"
    mid: tuple[float, float] = (0.0, 0.3)
    outside: float = 0.1
    end: float = 2.0
    end_from: float = 0.1
    kappa: float = 1e-4
    tau: float = 0.0
    lr: float = 2e-3
    optimizer: str = "normalized"
    renoise_target: bool = True
    renoise_until: float = 0.3
    eta: float | None = None

    def __post_init__(self) -> None:
        if self.num_steps < 1 or self.inner_steps < 1:
            raise ValueError(f"num_steps and inner_steps must be >= 1, got {self.num_steps}, {self.inner_steps}")
        if not 0.0 <= self.renoise_until <= 1.0:
            raise ValueError(f"renoise_until must be in [0, 1], got {self.renoise_until}")
        mid = self.mid
        if not (isinstance(mid, tuple | list) and len(mid) == 2 and all(isinstance(v, int | float) for v in mid)):
            raise ValueError(f"mid must be two numbers (lo, hi) with 0 <= lo < hi <= 1, got {mid!r}")
        if not 0 <= mid[0] < mid[1] <= 1:
            raise ValueError(f"mid must be two numbers (lo, hi) with 0 <= lo < hi <= 1, got {mid!r}")
        object.__setattr__(self, "mid", (float(mid[0]), float(mid[1])))
        if self.eta is not None and not (isinstance(self.eta, int | float) and 0 <= self.eta <= 1):
            raise ValueError(f"eta must be a DDIM noise level in [0, 1] or None, got {self.eta!r}")
        for name in ("gamma", "kappa", "tau", "lr", "outside", "end", "end_from"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v < math.inf:
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.optimizer not in OPTIMIZER_CLASSES:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZER_CLASSES)}, got {self.optimizer!r}")

    def gamma_t(self, s: float) -> float:
        """gamma_t at the normalized time s = t / T in [0, 1]."""
        if self.schedule == "constant":
            return self.gamma
        lo, hi = self.mid
        w = 1.0 if lo <= s <= hi else self.outside
        if self.schedule == "mid+end" and s < self.end_from:
            w = max(w, self.outside + (self.end - self.outside) * (1 - s / self.end_from))
        return self.gamma * w


@dataclass
class NDTMResult:
    """Fiber samples of NDTM with the per-step cost terms.

    Attributes:
        samples: data-space samples, shape (B, *shape).
        fiber_loss: ||phi(x~) - h||^2 of the final samples against the static target, shape (B,).
        terminal, control, score: the three cost terms at the last inner step of every denoising step,
            shape (num_steps, B) (0 where gamma_t = 0 and no optimization ran).
        gamma: gamma_t per denoising step, shape (num_steps,).
        timesteps: the model times, shape (num_steps,).
        options: the options used.
    """

    samples: torch.Tensor
    fiber_loss: torch.Tensor
    terminal: torch.Tensor
    control: torch.Tensor
    score: torch.Tensor
    gamma: torch.Tensor
    timesteps: torch.Tensor
    options: NDTMOptions


def _score(prior: DiffusionPrior, x: torch.Tensor, t: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """The model's score estimate grad log p(x_t) = -E[eps | x_t] / sigma_t."""
    if prior.parametrization == "flow":
        sigma = prior.sigma(t)
    else:
        sigma = (1 - prior.alpha_bar(t)).sqrt()
    eps = prior.eps_estimate(x, t, model_output=out)
    return -eps / sigma.clamp(min=1e-8).to(x.dtype).view(-1, *([1] * (x.ndim - 1)))


def _sq(v: torch.Tensor) -> torch.Tensor:
    """Per-sample squared norm, shape (B,)."""
    return v.flatten(1).pow(2).sum(1)


def ndtm_sample(
    prior: DiffusionPrior,
    subject: Subject,
    *,
    x: torch.Tensor | None = None,
    h: torch.Tensor | None = None,
    options: NDTMOptions = NDTMOptions(),
    generator: torch.Generator | None = None,
    x_T: torch.Tensor | None = None,
    target_generator: torch.Generator | None = None,
    progress: bool = False,
) -> NDTMResult:
    """Draw fiber samples x~ with phi(x~) ~= phi(x), one per row of x (repeat rows for several per target).

    Arguments:
        prior: a diffusion / flow-matching prior (data-space samples in the subject's input range).
        subject: the feature map phi.
        x: target inputs in data space, shape (B, *prior.shape); needed for the re-noised target.
        h: target features phi(x), shape (B, *feature_shape) (computed from x when omitted).
        options: :class:`NDTMOptions`.
        generator: randomness of the initial noise and the sampler steps — the same stream as
            ``prior.sample(B, generator=...)``, so gamma = 0 reproduces unguided sampling exactly.
        x_T: initial noise (model space), shape (B, *prior.shape), instead of a draw.
        target_generator: randomness of the re-noised targets x'_t (default: a generator seeded with
            ``generator.initial_seed() + 1``, kept apart so that the sampler's own stream is untouched).
        progress: show a progress bar over the denoising steps.

    Returns:
        an :class:`NDTMResult`.

    Example:
        >>> import torch
        >>> from diffusers import DDIMScheduler, UNet2DModel
        >>> from zoo import DiffusionPrior, Subject
        >>> net = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 8),
        ...                   norm_num_groups=4, down_block_types=("DownBlock2D",) * 2,
        ...                   up_block_types=("UpBlock2D",) * 2, layers_per_block=1)
        >>> prior = DiffusionPrior(net, DDIMScheduler())
        >>> phi = Subject(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4)))
        >>> x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
        >>> r = ndtm_sample(prior, phi, x=x, options=NDTMOptions(num_steps=3, inner_steps=2),
        ...                 generator=torch.Generator().manual_seed(1))
        >>> r.samples.shape, r.terminal.shape
        (torch.Size([2, 1, 8, 8]), torch.Size([3, 2]))

    References:
        Pandey et al. (2025), variational control for guidance in diffusion models (NDTM);
        Rousselot, Wendebourg & Koethe (2026), sampling invariant sets, section 3.2 and appendix C.
    """
    o = options
    if x is None and h is None:
        raise ValueError("pass the target input x or its features h")
    check_compatible(prior, subject, x)
    renoise = o.renoise_target and x is not None
    with torch.no_grad():
        h = subject(x) if h is None else h
    B = h.shape[0]
    ref = torch.empty((), device=prior.device)
    dev = generator.device if generator is not None else prior.device
    if x_T is None:
        x_T = torch.randn((B, *prior.shape), generator=generator, device=dev, dtype=ref.dtype)
    x_t = x_T.to(prior.device)
    target_gen = target_generator
    if target_gen is None and generator is not None:
        target_gen = torch.Generator(device=generator.device).manual_seed(generator.initial_seed() + 1)
    x0_target = prior.from_data(x) if renoise else None

    ts = prior.timesteps(o.num_steps)
    T = prior.num_train_timesteps
    costs = torch.zeros(3, o.num_steps, B)
    gammas = torch.zeros(o.num_steps)
    steps = range(o.num_steps)
    bar = tqdm(steps, desc="NDTM denoising", disable=not progress, leave=False)
    for i in bar:
        t, t_prev = ts[i], ts[i + 1]
        gamma_t = o.gamma_t(float(t) / T)  # guidance strength at this step
        lr_t = o.lr * (1 - i / o.num_steps)  # learning rate, linear from lr to 0
        gammas[i] = gamma_t
        u = torch.zeros_like(x_t)  # the control u_t starts at zero
        if gamma_t > 0 and lr_t > 0:
            with torch.no_grad():
                if renoise and float(t) / T >= o.renoise_until:  # h_t = phi(E[x_0 | x'_t]), x'_t ~ q(x_t | x)
                    x_prime = prior.noise(x0_target, t, generator=target_gen)
                    h_t = subject(prior.to_data(prior.x0_estimate(x_prime, t)))
                else:  # the static target h = phi(x)
                    h_t = h
                score_t = _score(prior, x_t, t, prior.model_output(x_t, t)) if o.tau > 0 else None
            u.requires_grad_(True)
            opt = OPTIMIZER_CLASSES[o.optimizer]([u], lr=lr_t)
            for _ in range(o.inner_steps):
                x_hat = x_t + gamma_t * u  # x^_t = x_t + gamma_t u_t                      (eq. 8)
                out = prior.model_output(x_hat, t)
                x0_hat = prior.x0_estimate(x_hat, t, model_output=out)  # E[x_0 | x^_t] (Tweedie)
                terminal = _sq(subject(prior.to_data(x0_hat)) - h_t)  # L_terminal: the fiber loss
                control = _sq(u)  # L_control = ||u_t||^2
                score = _sq(_score(prior, x_hat, t, out) - score_t) if o.tau > 0 else torch.zeros_like(control)
                loss = terminal + o.kappa * control + o.tau * score  # L (eq. 10), summed: samples independent
                # gradient in u_t only: the prior's and the subject's weights stay untouched
                (u.grad,) = torch.autograd.grad(loss.sum(), u)
                opt.step()
            costs[:, i] = torch.stack((terminal, control, score)).detach().cpu()
            if progress:
                bar.set_postfix(terminal=f"{float(terminal.detach().mean()):.3g}")
        with torch.no_grad():
            x_hat = x_t + gamma_t * u.detach()
            x_t = prior.step(x_hat, t, t_prev, eta=o.eta, generator=generator)  # x_{t-1} = DenoisingStep(x^_t)
    bar.close()
    with torch.no_grad():
        samples = prior.to_data(x_t)
        loss = _sq(subject(samples) - h)
    return NDTMResult(samples, loss, costs[0], costs[1], costs[2], gammas, ts[:-1].cpu(), o)


def ndtm_fibers(
    subject: Subject,
    x: torch.Tensor,
    n: int,
    *,
    prior: DiffusionPrior,
    options: NDTMOptions = NDTMOptions(),
    data: Callable | None = None,
    generator: torch.Generator | None = None,
    batch_size: int = 64,
    progress: bool = False,
) -> FiberDraws:
    """n NDTM fiber samples for each of B targets, in batches of ``batch_size`` guided samples (registered as the
    fiber method ``"ndtm"``).

    Arguments:
        subject, options, generator, progress: as in :func:`ndtm_sample` (one generator stream across
            batches: batch k continues where batch k - 1 stopped).
        x: targets in data space, shape (B, *prior.shape).
        n: samples per target.
        prior: the diffusion / flow-matching prior that is guided.
        data: unused (NDTM needs no training data).
        batch_size: samples guided together (memory: batch_size x (prior + subject) activations with gradients).

    Returns:
        a :class:`~inference.fibers.registry.FiberDraws`: samples (n, B, *shape), fiber losses (n, B), the cost
        traces ``terminal``, ``control``, ``score`` each (n, B, num_steps), and gamma_t (num_steps,).
    """
    if prior is None:
        raise ValueError("NDTM guides a diffusion or flow-matching prior: pass prior= (zoo fiber --prior NAME_OR_DIR)")
    check_compatible(prior, subject, x)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    B = x.shape[0]
    target_gen = None
    if generator is not None:
        target_gen = torch.Generator(device=generator.device).manual_seed(generator.initial_seed() + 1)
    xs = x.repeat(n, *([1] * (x.ndim - 1)))  # (n B, *shape), sample-major: row k = draw k // B of target k % B
    parts = []
    for i in range(0, n * B, batch_size):
        parts.append(
            ndtm_sample(
                prior,
                subject,
                x=xs[i : i + batch_size],
                options=options,
                generator=generator,
                target_generator=target_gen,
                progress=progress,
            )
        )
    samples = torch.cat([p.samples for p in parts]).reshape(n, B, *x.shape[1:])
    loss = torch.cat([p.fiber_loss for p in parts]).reshape(n, B)
    traces = {
        k: torch.cat([getattr(p, k) for p in parts], 1).T.reshape(n, B, -1) for k in ("terminal", "control", "score")
    }
    return FiberDraws(samples, loss, traces, parts[0].gamma)


register_fiber_method(
    "ndtm",
    ndtm_fibers,
    NDTMOptions,
    needs_prior=True,
    description="guide a pretrained diffusion / flow-matching prior onto the fiber (NDTM; needs --prior)",
)
