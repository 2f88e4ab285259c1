"""Priors: generative models p(x) with the pieces that guidance needs, gradients included.

:class:`DiffusionPrior` wraps a denoiser (a diffusers ``UNet2DModel``, or any module called as ``net(x_t, t)``)
and a diffusers scheduler (``DDPMScheduler``, ``DDIMScheduler`` or ``FlowMatchEulerDiscreteScheduler``). It does
not use the diffusers pipelines (they run under ``torch.no_grad``); every method is plain differentiable tensor
math on the scheduler's own noise schedule, batched over per-sample times. With abar_t the cumulative product of
the scheduler's alphas:

    noising      q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I)                    (DDPM / DDIM)
                 x_t = (1 - sigma_t) x_0 + sigma_t eps,  sigma_t = t / T                  (flow matching)
    Tweedie      E[x_0 | x_t] = (x_t - sqrt(1 - abar_t) eps_theta(x_t, t)) / sqrt(abar_t)  (epsilon)
                              = sqrt(abar_t) x_t - sqrt(1 - abar_t) v_theta(x_t, t)        (v_prediction)
                              = x_t - sigma_t v_theta(x_t, t)                              (flow matching)
    DDIM step    x_s = sqrt(abar_s) x0_hat + sqrt(1 - abar_s - s_ts^2) eps_hat + s_ts z,
                 s_ts^2 = eta^2 (1 - abar_s) / (1 - abar_t) (1 - abar_t / abar_s)           (Song et al. 2021)
    DDPM step    the Gaussian posterior q(x_s | x_t, x0_hat) (Ho et al. 2020), = DDIM with eta = 1
    Euler step   x_s = x_t + (sigma_s - sigma_t) v_theta(x_t, t)

The prior works in the model's space (e.g. images in [-1, 1]); ``to_data`` / ``from_data`` apply the recorded
normalization, and ``sample`` returns data-space values.

:class:`~zoo.flow_prior.FlowPrior` (in :mod:`zoo.flow_prior`) wraps a normalizing flow with exact ``log_prob``.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

DIFFUSERS_SCHEDULERS = ("DDPMScheduler", "DDIMScheduler", "FlowMatchEulerDiscreteScheduler")


class Prior(nn.Module):
    """Base of all priors: a generative model p(x) over data of shape ``shape``.

    Attributes:
        shape: the shape of one sample in data space, e.g. (3, 16, 16).
        meta: the model's metadata (``zoo.json`` content for loaded models).
    """

    role = "prior"

    def __init__(self, shape: tuple[int, ...], *, normalization: dict | None = None, meta: dict | None = None):
        super().__init__()
        self.shape = tuple(int(s) for s in shape)
        norm = normalization or {"mean": 0.0, "std": 1.0}
        self.norm_mean, self.norm_std = float(norm["mean"]), float(norm["std"])
        self.meta = dict(meta or {})

    def to_data(self, x: torch.Tensor) -> torch.Tensor:
        """Model space -> data space (undo the normalization), differentiable."""
        return x * self.norm_std + self.norm_mean

    def from_data(self, x: torch.Tensor) -> torch.Tensor:
        """Data space -> model space (apply the normalization), differentiable."""
        return (x - self.norm_mean) / self.norm_std

    def sample(self, n: int, *, generator: torch.Generator | None = None, **kwargs: Any) -> torch.Tensor:
        """Draw n samples in data space; every concrete prior (DiffusionPrior, FlowPrior) implements it."""
        raise NotImplementedError(f"{type(self).__name__} must implement sample(n, *, generator)")

    @property
    def device(self) -> torch.device:
        p = next(self.parameters(), None)
        return p.device if p is not None else torch.device("cpu")


def _randn(shape, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    # Draw on the generator's device and move, as diffusers' randn_tensor does, so CPU generators work with GPU
    # models and runs are reproducible across devices.
    dev = generator.device if generator is not None else like.device
    return torch.randn(shape, generator=generator, device=dev, dtype=like.dtype).to(like.device)


def _per_sample(t: torch.Tensor | float | int, x: torch.Tensor) -> torch.Tensor:
    """Times as a (B,) tensor on x's device (a scalar is broadcast over the batch)."""
    t = torch.as_tensor(t, device=x.device)
    if t.ndim == 0:
        t = t.expand(x.shape[0])
    if t.shape != (x.shape[0],):
        raise ValueError(f"t must be a scalar or have shape ({x.shape[0]},), got {tuple(t.shape)}")
    return t


def _bcast(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.to(x.dtype).view(-1, *([1] * (x.ndim - 1)))


class DiffusionPrior(Prior):
    """A diffusion or flow-matching prior: denoiser + diffusers scheduler, differentiable throughout.

    Arguments:
        net: the denoiser, called as ``net(x_t, t)``; a diffusers ``UNet2DModel`` (whose ``.sample`` is used) or
            any module returning a tensor shaped like x_t.
        scheduler: a diffusers ``DDPMScheduler``, ``DDIMScheduler`` or ``FlowMatchEulerDiscreteScheduler``
            (copied; only its config and noise schedule are used).
        shape: sample shape (C, H, W); default from the UNet config.
        normalization: ``{"mean", "std"}`` with model = (data - mean) / std (default: identity).
        meta: metadata to carry (``zoo.json``).

    Shapes: x_t (B, C, H, W); t a scalar or (B,) of model times (integers for DDPM / DDIM, floats in [0, T] for
    flow matching).

    Example:
        >>> import torch
        >>> from diffusers import DDPMScheduler, UNet2DModel
        >>> from zoo import DiffusionPrior
        >>> net = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 8),
        ...                   norm_num_groups=4, down_block_types=("DownBlock2D",) * 2,
        ...                   up_block_types=("UpBlock2D",) * 2, layers_per_block=1)
        >>> prior = DiffusionPrior(net, DDPMScheduler())
        >>> ts = prior.timesteps(10)  # 10 steps plus the terminal time
        >>> x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
        >>> prior.x0_estimate(x, ts[0]).shape
        torch.Size([2, 1, 8, 8])

    References:
        Ho, Jain & Abbeel (2020), DDPM; Song, Meng & Ermon (2021), DDIM; Lipman et al. (2023), flow matching.
    """

    def __init__(
        self,
        net: nn.Module,
        scheduler: Any,
        *,
        shape: tuple[int, ...] | None = None,
        normalization: dict | None = None,
        meta: dict | None = None,
    ) -> None:
        name = type(scheduler).__name__
        if name not in DIFFUSERS_SCHEDULERS:
            raise ValueError(f"unsupported scheduler {name}; use one of {', '.join(DIFFUSERS_SCHEDULERS)}")
        cfg = scheduler.config
        if shape is None:
            ncfg = getattr(net, "config", {})
            if "sample_size" not in ncfg:
                raise ValueError("pass shape=(C, H, W): the denoiser has no diffusers config with sample_size")
            size = ncfg["sample_size"]
            size = (size, size) if isinstance(size, int) else tuple(size)
            shape = (ncfg["in_channels"], *size)
        super().__init__(shape, normalization=normalization, meta=meta)
        self.net = net
        self.scheduler = copy.deepcopy(scheduler)
        self.scheduler_class = name
        self.num_train_timesteps = int(cfg.num_train_timesteps)
        if name == "FlowMatchEulerDiscreteScheduler":
            for flag in ("stochastic_sampling", "invert_sigmas"):
                if cfg.get(flag, False):
                    raise ValueError(f"FlowMatchEulerDiscreteScheduler with {flag}=True is not supported")
            self.parametrization = "flow"
        else:
            if cfg.get("thresholding", False):
                raise ValueError("schedulers with thresholding=True are not supported; use clip_sample")
            if name == "DDPMScheduler" and cfg.get("variance_type", "fixed_small") != "fixed_small":
                raise ValueError(f"DDPM variance_type {cfg.variance_type!r} is not supported; use 'fixed_small'")
            self.parametrization = cfg.prediction_type
            if self.parametrization not in ("epsilon", "v_prediction", "sample"):
                raise ValueError(f"unsupported prediction_type {self.parametrization!r}")
            self.register_buffer("alphas_cumprod", scheduler.alphas_cumprod.detach().clone().float(), False)
            final = getattr(scheduler, "final_alpha_cumprod", torch.tensor(1.0))
            self.final_alpha_cumprod = float(final)
            self.clip = float(cfg.clip_sample_range) if cfg.get("clip_sample", False) else None

    # ---- schedule -------------------------------------------------------------------------------------------
    def timesteps(self, num_steps: int) -> torch.Tensor:
        """The sampling times from noise to data, with the terminal time appended: shape (num_steps + 1,).

        The times are the scheduler's own (``set_timesteps``); the last entry is -1 for DDPM / DDIM (meaning
        "x_0": abar = the scheduler's final alpha) and 0 for flow matching (sigma = 0). Use consecutive pairs
        ``(t, t_prev)`` with :meth:`step`.
        """
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        s = copy.deepcopy(self.scheduler)
        s.set_timesteps(num_steps)
        ts = s.timesteps.to(self.device)
        end = torch.tensor([0 if self.parametrization == "flow" else -1], dtype=ts.dtype, device=ts.device)
        return torch.cat((ts, end))

    def alpha_bar(self, t: torch.Tensor) -> torch.Tensor:
        """abar_t for integer times t (shape (B,)); abar at t < 0 is the scheduler's final value (x_0)."""
        t = t.long()
        a = self.alphas_cumprod.to(t.device)[t.clamp(min=0)]
        return torch.where(t < 0, torch.full_like(a, self.final_alpha_cumprod), a)

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        """Flow-matching noise level sigma_t = t / T (x_t = (1 - sigma) x_0 + sigma eps)."""
        return t.float() / self.num_train_timesteps

    # ---- model --------------------------------------------------------------------------------------------
    def model_output(self, x_t: torch.Tensor, t: torch.Tensor | float | int) -> torch.Tensor:
        """The denoiser output at (x_t, t): eps, v, x_0 or the flow velocity, shape of x_t."""
        t = _per_sample(t, x_t)
        out = self.net(x_t, t)
        return out.sample if hasattr(out, "sample") else out

    def x0_estimate(
        self, x_t: torch.Tensor, t: torch.Tensor | float | int, *, model_output: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The Tweedie estimate E[x_0 | x_t] (unclipped), differentiable in x_t and the weights.

        Arguments:
            x_t: noisy samples in model space, shape (B, C, H, W).
            t: model time(s), scalar or (B,).
            model_output: a precomputed :meth:`model_output` (saves one network call).
        """
        t = _per_sample(t, x_t)
        out = self.model_output(x_t, t) if model_output is None else model_output
        if self.parametrization == "flow":
            return x_t - _bcast(self.sigma(t), x_t) * out
        a = _bcast(self.alpha_bar(t), x_t)
        if self.parametrization == "epsilon":
            return (x_t - (1 - a).sqrt() * out) / a.sqrt()
        if self.parametrization == "v_prediction":
            return a.sqrt() * x_t - (1 - a).sqrt() * out
        return out

    def eps_estimate(self, x_t: torch.Tensor, t, *, model_output: torch.Tensor | None = None) -> torch.Tensor:
        """The noise estimate E[eps | x_t] (flow matching: x_0 + v)."""
        t = _per_sample(t, x_t)
        out = self.model_output(x_t, t) if model_output is None else model_output
        if self.parametrization == "flow":
            return x_t + _bcast(1 - self.sigma(t), x_t) * out
        a = _bcast(self.alpha_bar(t), x_t)
        if self.parametrization == "epsilon":
            return out
        if self.parametrization == "v_prediction":
            return a.sqrt() * out + (1 - a).sqrt() * x_t
        return (x_t - a.sqrt() * out) / (1 - a).sqrt()

    # ---- forward process ------------------------------------------------------------------------------------
    def noise(
        self,
        x0: torch.Tensor,
        t: torch.Tensor | float | int,
        *,
        generator: torch.Generator | None = None,
        eps: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """A draw of q(x_t | x_0) (model space), shape of x0; ``eps`` fixes the standard-normal noise."""
        t = _per_sample(t, x0)
        eps = _randn(x0.shape, generator, x0) if eps is None else eps
        if self.parametrization == "flow":
            s = _bcast(self.sigma(t), x0)
            return (1 - s) * x0 + s * eps
        a = _bcast(self.alpha_bar(t), x0)
        return a.sqrt() * x0 + (1 - a).sqrt() * eps

    # ---- reverse step ---------------------------------------------------------------------------------------
    def step(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor | float | int,
        t_prev: torch.Tensor | float | int,
        *,
        model_output: torch.Tensor | None = None,
        eta: float | None = None,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One sampler step from time t to the earlier time t_prev, differentiable.

        Arguments:
            x_t: current samples (model space), shape (B, C, H, W).
            t, t_prev: current and next time (consecutive entries of :meth:`timesteps`), scalars or (B,).
            model_output: a precomputed :meth:`model_output` at (x_t, t).
            eta: DDIM noise scale (0 deterministic, 1 = DDPM variance). ``None`` uses the scheduler's own
                sampler: the DDPM posterior for ``DDPMScheduler``, DDIM with eta = 0 for ``DDIMScheduler``.
                Flow matching (Euler) is deterministic and accepts only ``None`` / 0.
            generator: randomness of the step noise.
            noise: the standard-normal step noise itself (instead of ``generator``).

        Returns:
            x_{t_prev}, shape of x_t. As in diffusers, x0_hat is clipped to the scheduler's ``clip_sample_range``
            inside the step when the scheduler has ``clip_sample=True`` (:meth:`x0_estimate` is never clipped).
        """
        t, t_prev = _per_sample(t, x_t), _per_sample(t_prev, x_t)
        out = self.model_output(x_t, t) if model_output is None else model_output
        if self.parametrization == "flow":
            if eta:
                raise ValueError("flow matching uses the deterministic Euler step; eta must be None or 0")
            return x_t + _bcast(self.sigma(t_prev) - self.sigma(t), x_t) * out
        x0 = self.x0_estimate(x_t, t, model_output=out)
        eps = self.eps_estimate(x_t, t, model_output=out)
        if self.clip is not None:
            x0 = x0.clamp(-self.clip, self.clip)
        a_t, a_s = _bcast(self.alpha_bar(t), x_t), _bcast(self.alpha_bar(t_prev), x_t)
        var = (1 - a_s) / (1 - a_t) * (1 - a_t / a_s)  # posterior variance of q(x_s | x_t, x_0)
        if eta is None and self.scheduler_class == "DDPMScheduler":
            # Posterior mean of q(x_s | x_t, x0_hat), written as in diffusers' DDPMScheduler.step.
            alpha = a_t / a_s
            mean = a_s.sqrt() * (1 - alpha) / (1 - a_t) * x0 + alpha.sqrt() * (1 - a_s) / (1 - a_t) * x_t
            std = var.clamp(min=1e-20).sqrt() * _bcast((t > 0).to(x_t.dtype), x_t)
        else:
            eta = 0.0 if eta is None else float(eta)
            std = eta * var.sqrt()
            mean = a_s.sqrt() * x0 + (1 - a_s - std**2).clamp(min=0).sqrt() * eps
        if noise is None and not bool((std > 0).any()):
            return mean
        z = _randn(x_t.shape, generator, x_t) if noise is None else noise
        return mean + std * z

    # ---- sampling -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        num_steps: int = 50,
        eta: float | None = None,
        generator: torch.Generator | None = None,
        x_T: torch.Tensor | None = None,
        data_space: bool = True,
    ) -> torch.Tensor:
        """Unconditional samples (no gradients), shape (n, *shape).

        Arguments:
            n: number of samples.
            num_steps: sampler steps (the scheduler's spacing).
            eta: see :meth:`step` (``None``: the scheduler's own sampler).
            generator: randomness of the initial noise and the steps.
            x_T: initial noise (n, *shape) instead of a fresh draw.
            data_space: return data-space values (else model space).
        """
        ts = self.timesteps(num_steps)
        ref = torch.empty((), device=self.device)
        x = _randn((n, *self.shape), generator, ref) if x_T is None else x_T.to(self.device)
        for t, t_prev in zip(ts[:-1], ts[1:]):
            x = self.step(x, t, t_prev, eta=eta, generator=generator)
        return self.to_data(x) if data_space else x
