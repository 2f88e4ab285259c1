"""Generative classifiers: an invertible network x -> z with a Gaussian-mixture latent, one component per class.

The IB-INN (Ardizzone's thesis, ch. 5): z = g(x) with q(z | y) = N(mu_y, I) and class weights w_y = log p(y), so that

    log p(x | y) = log N(g(x); mu_y, I) + log |det J_g(x)|          (exact: change of variables)
    log p(x)     = logsumexp_y (log N(g(x); mu_y, I) + w_y) + log |det J_g(x)|
    p(y | x)     = softmax_y (-||g(x) - mu_y||^2 / 2 + w_y)           (the Jacobian cancels: Bayes' rule)

and class fibers for free: z ~ N(mu_y, I), x = g^{-1}(z) (:meth:`GenerativeClassifier.sample_class`). Its
``forward`` returns the class logits -||z - mu_y||^2 / 2 + w_y, so as a :class:`zoo.Subject` (output ``logits``,
``probs``, ``log_probs``) it is a classifier like any other; ``features="latent"`` makes the latent z the output.

Networks (``z -> x`` order, normflows' convention; :meth:`latent` runs them inverted): :func:`ib_inn_images` — GLOW
blocks (affine coupling, 1x1 convolution, ActNorm) at three scales joined by 2x2 squeezes (a volume-preserving
reshuffle, where the thesis uses a Haar transform, also orthonormal); :func:`ib_inn_vectors` — RealNVP couplings for
vectors. The loss is the thesis' rebalanced IB loss (eq. 5.17), :func:`ib_loss`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


def ib_inn_images(
    channels: int = 3, size: int = 16, blocks: tuple[int, ...] = (2, 4, 4), hidden: tuple[int, ...] = (32, 64, 64)
) -> tuple[nn.ModuleList, tuple[int, ...]]:
    """GLOW blocks at ``size``, ``size / 2`` and ``size / 4`` (``blocks[i]`` each, conv subnets of ``hidden[i]``
    channels), joined by squeezes; returns the flows (z -> x order) and the latent's shape (C * 16, size / 4, ...)."""
    import normflows as nf

    if size % 4:
        raise ValueError(f"image size must be a multiple of 4 for two squeezes, got {size}")
    x_to_z: list[nn.Module] = []
    c = channels
    for scale, (k, h) in enumerate(zip(blocks, hidden)):
        if scale:
            x_to_z.append(nf.flows.Squeeze())  # inverted below: Squeeze.inverse maps (C, H, W) -> (4C, H/2, W/2)
            c *= 4
        x_to_z += [nf.flows.GlowBlock(c, h, split_mode="channel", scale=True, leaky=0.01) for _ in range(k)]
    flows = nn.ModuleList(list(reversed(x_to_z)))
    s = size // 2 ** (len(blocks) - 1)
    return flows, (c, s, s)


def ib_inn_vectors(dim: int, blocks: int = 6, hidden: int = 64) -> tuple[nn.ModuleList, tuple[int, ...]]:
    """RealNVP couplings on R^dim (zoo.architectures.realnvp's blocks); returns the flows and the latent shape."""
    from zoo.architectures import realnvp

    return nn.ModuleList(realnvp(dim, num_layers=blocks, hidden=hidden).flows), (dim,)


class GenerativeClassifier(nn.Module):
    """A generative classifier: invertible flows x <-> z and a Gaussian mixture N(mu_y, I) over z.

    Arguments:
        flows: invertible normflows flows in z -> x order (each with ``forward`` and ``inverse`` returning
            ``(value, log_det)``).
        latent_shape: the shape of z before flattening.
        classes: the number of classes K.
        input_shape: the shape of one input x.
        mu_scale: the spread of the initial class means (N(0, mu_scale^2 I) each); default sqrt(2 / D), which puts
            the means of two classes about 2 apart whatever D (N(0, I) means in D = 768 would be ~39 apart and make
            the untrained classifier certain).
        features: what ``forward`` returns: ``"logits"`` (default) or ``"latent"`` (z, flattened).
        covariance: ``"identity"`` (the IB-INN: N(mu_y, I)), ``"diagonal"`` (NFPI: N(mu_y, diag(var_y))) or
            ``"full"`` (NFPI: N(mu_y, Sigma_y)); the variances / covariances are a buffer that
            :func:`zoo.nfpi.nfpi_update` sets.

    Shapes: x (B, *input_shape); z (B, D) with D = prod(latent_shape); logits (B, K).
    """

    def __init__(
        self,
        flows: nn.ModuleList,
        latent_shape: tuple[int, ...],
        classes: int,
        input_shape: tuple[int, ...],
        *,
        mu_scale: float | None = None,
        features: str = "logits",
        covariance: str = "identity",
    ) -> None:
        super().__init__()
        if features not in ("logits", "latent"):
            raise ValueError(f"features must be 'logits' or 'latent', got {features!r}")
        self.flows = flows
        self.latent_shape, self.input_shape = tuple(latent_shape), tuple(input_shape)
        self.dim = math.prod(self.latent_shape)
        scale = math.sqrt(2 / self.dim) if mu_scale is None else float(mu_scale)
        self.mu = nn.Parameter(scale * torch.randn(int(classes), self.dim))
        self.register_buffer("log_weights", torch.full((int(classes),), -math.log(int(classes))))
        self.features = features
        if covariance not in ("identity", "diagonal", "full"):
            raise ValueError(f"covariance must be 'identity', 'diagonal' or 'full', got {covariance!r}")
        self.covariance = covariance
        # saved only where it is a parameter of the model (NFPI); the IB-INN's is the identity
        self.register_buffer("var", torch.ones(int(classes), self.dim), persistent=covariance == "diagonal")
        eye = torch.eye(self.dim).expand(int(classes), self.dim, self.dim).clone() if covariance == "full" else None
        self.register_buffer("cov", eye, persistent=covariance == "full")

    @property
    def classes(self) -> int:
        return self.mu.shape[0]

    def latent(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z = g(x) flattened (B, D) and log |det J_g(x)| (B,)."""
        z, logdet = x, torch.zeros(len(x), device=x.device, dtype=x.dtype)
        for f in reversed(self.flows):
            z, ld = f.inverse(z)
            logdet = logdet + ld
        return z.reshape(len(x), -1), logdet

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """x = g^{-1}(z) for flattened latents z (B, D)."""
        x = z.reshape(len(z), *self.latent_shape)
        for f in self.flows:
            x, _ = f(x)
        return x

    def component_log_probs(self, z: torch.Tensor) -> torch.Tensor:
        """log N(z; mu_y, Sigma_y) + w_y for every class, (B, K) (Sigma_y = I, or diag(var_y))."""
        if self.covariance == "identity":
            d2 = (z[:, None, :] - self.mu[None]).pow(2).sum(-1)
            return -0.5 * d2 - 0.5 * self.dim * math.log(2 * math.pi) + self.log_weights
        if self.covariance == "full":
            chol = torch.linalg.cholesky(self.cov)  # (K, D, D)
            r = (z[:, None, :] - self.mu[None]).unsqueeze(-1)  # (B, K, D, 1)
            sol = torch.linalg.solve_triangular(chol[None], r, upper=False)[..., 0]
            logdet = 2 * chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)
            return -0.5 * (sol.pow(2).sum(-1) + logdet + self.dim * math.log(2 * math.pi)) + self.log_weights
        d2 = ((z[:, None, :] - self.mu[None]).pow(2) / self.var[None]).sum(-1)
        return -0.5 * (d2 + self.var.log().sum(-1) + self.dim * math.log(2 * math.pi)) + self.log_weights

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores whose softmax is p(y | x) (identity covariance: -||z - mu_y||^2 / 2 + w_y), (B, K)."""
        z, _ = self.latent(x)
        return self.component_log_probs(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.features == "latent":
            return self.latent(x)[0]
        return self.logits(x)

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x) (y = None) or log p(x | y) for labels y (B,), exact, (B,)."""
        z, logdet = self.latent(x)
        comp = self.component_log_probs(z)
        if y is None:
            return torch.logsumexp(comp, -1) + logdet
        return comp.gather(1, y.long().view(-1, 1))[:, 0] - self.log_weights[y.long()] + logdet

    def class_probs(self, x: torch.Tensor) -> torch.Tensor:
        """p(y | x), (B, K)."""
        return self.logits(x).softmax(-1)

    def class_log_likelihoods(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x | y) for every class, (B, K), exact."""
        z, logdet = self.latent(x)
        return self.component_log_probs(z) - self.log_weights + logdet[:, None]

    @torch.no_grad()
    def update_class_gaussians(self, x: torch.Tensor, y: torch.Tensor, *, lam: float) -> None:
        """One NFPI update of the class means and covariances from inputs x with labels y
        (:func:`zoo.nfpi.fpi_step`; lam = 0: the class moments). Needs ``covariance`` diagonal or full."""
        from zoo.nfpi import fpi_step

        if self.covariance == "identity":
            raise ValueError("NFPI updates class covariances: build the model with covariance='diagonal' or 'full'")
        z = self.latent(x)[0]
        current = self.cov if self.covariance == "full" else self.var
        mu, cov = fpi_step(z.cpu(), y.cpu(), self.mu.cpu(), current.cpu(), lam=lam)
        self.mu.copy_(mu.to(self.mu))
        current.copy_(cov.to(current))

    @torch.no_grad()
    def sample_class(self, y: int, n: int, *, generator: torch.Generator | None = None, temperature: float = 1.0):
        """n draws of p(x | y): z ~ N(mu_y, temperature^2 I), x = g^{-1}(z) — the class fiber of the latent."""
        if not 0 <= int(y) < self.classes:
            raise ValueError(f"class y must be in [0, {self.classes - 1}], got {y!r}")
        dev = self.mu.device
        eps = torch.randn(int(n), self.dim, generator=generator, device=generator.device if generator else dev)
        eps = eps.to(dev)
        if self.covariance == "full":
            eps = eps @ torch.linalg.cholesky(self.cov[int(y)]).T
            return self.decode(self.mu[int(y)] + temperature * eps)
        return self.decode(self.mu[int(y)] + temperature * self.var[int(y)].sqrt() * eps)


class GenerativeSubject:
    """Mixin of the generative pieces for a :class:`zoo.Subject` whose module is a :class:`GenerativeClassifier`:
    ``log_prob(x)``, ``log_prob(x, y)``, ``class_probs(x)``, ``class_log_likelihoods(x)`` and ``sample_class``."""

    module: GenerativeClassifier

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Exact log p(x) or log p(x | y), (B,)."""
        return self.module.log_prob(x, y)

    def class_probs(self, x: torch.Tensor) -> torch.Tensor:
        """p(y | x) by Bayes' rule, (B, K)."""
        return self.module.class_probs(x)

    def class_log_likelihoods(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x | y) for every class, (B, K)."""
        return self.module.class_log_likelihoods(x)

    def sample_class(self, y: int, n: int, *, generator: torch.Generator | None = None, temperature: float = 1.0):
        """n draws of p(x | y) (class fibers of the latent, decoded), (n, *input_shape)."""
        return self.module.sample_class(y, n, generator=generator, temperature=temperature)


def ib_loss(
    model: GenerativeClassifier,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    gamma: float = 1.0,
    noise: float = 1e-3,
    smoothing: float = 0.05,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """The rebalanced IB loss (thesis eq. 5.17): 2 / (1 + gamma) (L_X / dim(X) - gamma L_Y).

    L_X = -E[log q(g(x + eps)) + log |det J|] with eps ~ N(0, noise^2 I) (the mixture marginal, stable logsumexp form of
    app. C.2); L_Y = E[sum_y y~ log p(y | x + eps)] with labels smoothed by ``smoothing`` (thesis: 0.05). Returns the
    loss and its parts (nats; ``l_x`` per dimension).
    """
    eps = torch.randn(x.shape, generator=generator, device=generator.device if generator else x.device)
    xn = x + noise * eps.to(x)
    z, logdet = model.latent(xn)
    comp = model.component_log_probs(z)
    d = x[0].numel()
    l_x = -(torch.logsumexp(comp, -1) + logdet).mean() / d
    logp = torch.log_softmax(comp, -1)
    target = torch.full_like(logp, smoothing / model.classes)
    target.scatter_(1, y.long().view(-1, 1), 1 - smoothing + smoothing / model.classes)
    l_y = (target * logp).sum(-1).mean()
    loss = 2 / (1 + gamma) * (l_x - gamma * l_y)
    acc = (comp.argmax(-1) == y).float().mean()
    return {"loss": loss, "l_x": l_x.detach(), "l_y": l_y.detach(), "accuracy": acc.detach()}


def nfpi_loss(
    model: GenerativeClassifier,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    noise: float = 1e-3,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """L_NF of NFPI: the class-conditional negative log-likelihood -log p(x + eps | y) per dimension (the class
    Gaussians are fixed here; :func:`zoo.nfpi.nfpi_update` moves them between steps)."""
    eps = torch.randn(x.shape, generator=generator, device=generator.device if generator else x.device)
    xn = x + noise * eps.to(x)
    z, logdet = model.latent(xn)
    comp = model.component_log_probs(z)
    nll = -(comp.gather(1, y.long().view(-1, 1))[:, 0] - model.log_weights[y.long()] + logdet).mean() / x[0].numel()
    return {"loss": nll, "accuracy": (comp.argmax(-1) == y).float().mean().detach()}


def fit_generative(
    model: GenerativeClassifier,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    loss: str = "ib",
    gamma: float = 1.0,
    lam: float = 0.0,
    steps: int = 1000,
    batch_size: int = 64,
    lr: float = 1e-3,
    fpi_every: int = 20,
    fpi_batch: int = 1024,
    seed: int = 0,
    progress: bool = False,
) -> GenerativeClassifier:
    """Train a generative classifier on labelled data with zoo's one loop: the IB loss (``loss="ib"``, ``gamma``)
    or NFPI (``loss="nfpi"``: L_NF by gradient, the class means and covariances by the fixed-point update with
    repulsion ``lam`` every ``fpi_every`` steps on ``fpi_batch`` latents; the model needs ``covariance="diagonal"``
    or ``"full"``).
    """
    from zoo.training import TrainConfig, train

    if loss not in ("ib", "nfpi"):
        raise ValueError(f"loss must be 'ib' or 'nfpi', got {loss!r}")
    if loss == "nfpi" and model.covariance == "identity":
        raise ValueError("NFPI updates class covariances: build the model with covariance='diagonal' or 'full'")
    g = torch.Generator().manual_seed(seed)

    def fpi(repulsion: float) -> None:
        idx = torch.randint(len(x), (min(fpi_batch, len(x)),), generator=g)
        model.update_class_gaussians(x[idx], y[idx], lam=repulsion)

    if loss == "nfpi":
        model.mu.requires_grad_(False)
        fpi(0.0)  # start at the class moments, as the paper does

    def batches(step: int):
        i = torch.randint(len(x), (batch_size,), generator=g)
        return x[i], y[i]

    def loss_fn(batch, step: int) -> dict[str, torch.Tensor]:
        if loss == "nfpi" and step and step % fpi_every == 0:
            fpi(lam)
        xb, yb = batch
        if loss == "ib":
            return ib_loss(model, xb, yb, gamma=gamma, generator=g)
        return nfpi_loss(model, xb, yb, generator=g)

    params = [p for p in model.parameters() if p.requires_grad]
    config = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, warmup=min(100, steps // 10), grad_clip=8.0)
    train(model, loss_fn, batches, config=config, progress=progress, desc=f"{loss} classifier", params=params)
    return model.eval()


def build_ib_inn(
    *,
    input_shape: list[int] | tuple[int, ...],
    classes: int,
    features: str = "logits",
    covariance: str = "identity",
    **net: Any,
) -> GenerativeClassifier:
    """The ``zoo.ib-inn`` architecture from its JSON config: images (C, H, W) or vectors (D,)."""
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 3:
        flows, latent = ib_inn_images(shape[0], shape[1], **{k: tuple(v) for k, v in net.items()})
    elif len(shape) == 1:
        flows, latent = ib_inn_vectors(shape[0], **net)
    else:
        raise ValueError(f"an IB-INN takes images (C, H, W) or vectors (D,), got input_shape {shape}")
    return GenerativeClassifier(flows, latent, classes, shape, features=features, covariance=covariance)


def generative_subject() -> type:
    """The :class:`zoo.Subject` subclass with the generative pieces (:class:`GenerativeSubject`)."""
    from zoo.subjects import Subject

    return type("GenerativeClassifierSubject", (GenerativeSubject, Subject), {})


__all__ = [
    "GenerativeClassifier",
    "GenerativeSubject",
    "build_ib_inn",
    "generative_subject",
    "ib_inn_images",
    "fit_generative",
    "ib_inn_vectors",
    "ib_loss",
    "nfpi_loss",
]
