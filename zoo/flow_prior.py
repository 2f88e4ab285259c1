"""A normalizing-flow prior: exact ``log_prob`` and seeded ``sample``, fitted to samples, saved and loaded like
every zoo model.

Where it is used: as the prior of your own simulator (``simulators.from_function(f, prior=flow_prior)`` or
``simulators.as_prior(flow_prior)`` turn it into a distribution over theta), and anywhere a density p(x) with an
exact ``log_prob`` is needed. Guided fiber sampling (NDTM) needs a diffusion prior's denoiser and does not take it.

Example:
    >>> import torch
    >>> from zoo import FlowPrior
    >>> prior = FlowPrior.realnvp(2, num_layers=2, hidden=8)
    >>> x = prior.sample(5, generator=torch.Generator().manual_seed(0))
    >>> prior.log_prob(x).shape
    torch.Size([5])
"""

from __future__ import annotations

import math
from dataclasses import asdict, replace

import torch
from torch import nn

from zoo.architectures import realnvp
from zoo.priors import Prior, _randn
from zoo.training import TrainConfig, train

FIT = TrainConfig(steps=2000, batch_size=256, lr=1e-3, val_every=100)
"""Default training of :meth:`FlowPrior.fit` (maximum likelihood, cosine schedule, best held-out weights kept)."""


class FlowPrior(Prior):
    """A normalizing-flow prior (normflows) with exact log-density and sampling.

    Arguments:
        flow: a ``normflows.NormalizingFlow`` over vectors of size D (base ``DiagGaussian`` for seeded sampling).
        normalization: ``{"mean", "std"}`` with model = (data - mean) / std.
        meta: metadata to carry; ``zoo.save`` needs ``architecture`` and ``config`` in it, which
            :meth:`realnvp` and :meth:`fit` record.

    Shapes: x (B, D) in data space; ``log_prob`` (B,) includes the normalization's log-Jacobian.
    """

    def __init__(self, flow: nn.Module, *, normalization: dict | None = None, meta: dict | None = None) -> None:
        shape = tuple(flow.q0.shape)
        super().__init__(shape, normalization=normalization, meta=meta)
        self.flow = flow

    @classmethod
    def realnvp(
        cls, dim: int, *, num_layers: int = 8, hidden: int = 64, normalization: dict | None = None
    ) -> FlowPrior:
        """An untrained RealNVP flow prior on R^dim that ``zoo.save`` can write (:func:`zoo.architectures.realnvp`)."""
        config = {"dim": int(dim), "num_layers": int(num_layers), "hidden": int(hidden)}
        meta = {"architecture": "zoo.realnvp", "config": config}
        return cls(realnvp(**config), normalization=normalization, meta=meta)

    @classmethod
    def fit(
        cls,
        samples: torch.Tensor,
        *,
        num_layers: int = 8,
        hidden: int = 64,
        config: TrainConfig = FIT,
        validation: float = 0.1,
        generator: torch.Generator | None = None,
        progress: bool = True,
    ) -> FlowPrior:
        """Fit a RealNVP flow prior to samples (N, D) by maximum likelihood.

        A ``validation`` fraction is held out; the weights with the lowest held-out negative log-likelihood are
        kept (``meta["metrics"]["val_nll"]``, nats per sample). The normalization is the samples' mean and sd.

        Raises:
            ValueError: samples that are not a finite (N, D) tensor with D >= 2 and at least 20 rows.
        """
        x = torch.as_tensor(samples, dtype=torch.float32)
        if x.ndim != 2 or x.shape[1] < 2 or x.shape[0] < 20:
            raise ValueError(f"samples must be an (N, D) tensor with N >= 20 and D >= 2, got shape {tuple(x.shape)}")
        if not bool(torch.isfinite(x).all()):
            raise ValueError("samples must be finite; drop the rows with NaN or inf first")
        if not 0.0 < validation < 0.5:
            raise ValueError(f"validation must be a fraction in (0, 0.5), got {validation!r}")
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        n_val = max(1, int(round(validation * len(x))))
        perm = torch.randperm(len(x), generator=g)
        val, fit = x[perm[:n_val]], x[perm[n_val:]]
        std = float(fit.std()) or 1.0
        norm = {"mean": float(fit.mean()), "std": std}
        seed = int(torch.randint(0, 2**62, (), generator=g))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            prior = cls.realnvp(x.shape[1], num_layers=num_layers, hidden=hidden, normalization=norm)
        prior = prior.to(config.device)
        fit, val = fit.to(config.device), val.to(config.device)
        batch = min(config.batch_size, len(fit))

        def batches(step: int) -> torch.Tensor:
            return fit[torch.randint(0, len(fit), (batch,), generator=g).to(fit.device)]

        history = train(
            prior,
            lambda b, step: {"loss": -prior.log_prob(b).mean()},
            batches,
            config=replace(config, val_every=config.val_every or 100),
            val_loss=lambda: float(-prior.log_prob(val).mean()),
            progress=progress,
            desc="flow prior",
        )
        prior.meta.update(
            trained_on=f"{len(x)} samples in {x.shape[1]} dimensions",
            metrics={"val_nll": history.best_val},
            training={"config": asdict(config), "seconds": history.seconds, "validation": validation},
        )
        return prior.eval()

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log p(x) of data-space x (B, D)."""
        if x.ndim != 2 or tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"x must have shape (B, {', '.join(map(str, self.shape))}), got {tuple(x.shape)}")
        d = x[0].numel()
        return self.flow.log_prob(self.from_data(x)) - d * math.log(self.norm_std)

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """n exact samples in data space, shape (n, D)."""
        q0 = self.flow.q0
        gaussian = hasattr(q0, "loc") and hasattr(q0, "log_scale")
        if generator is not None and not gaussian:
            raise ValueError(f"seeded sampling needs a DiagGaussian base, this flow has {type(q0).__name__}")
        if gaussian:
            eps = _randn((n, *self.shape), generator, q0.loc)
            log_scale = q0.log_scale
            if getattr(q0, "temperature", None) is not None:
                log_scale = log_scale + math.log(q0.temperature)
            z = q0.loc + torch.exp(log_scale) * eps
        else:
            z, _ = q0(n)
        for f in self.flow.flows:
            z, _ = f(z)
        return self.to_data(z)
