"""Log-likelihoods of inputs under a prior, each labelled as what it is: exact, a bound, or an estimate.

- **Flow priors** (:class:`zoo.FlowPrior`): ``log_prob`` is exact (change of variables through the flow).
- **Diffusion priors**, probability-flow ODE (Song et al. 2021): the deterministic sampler is an ODE whose
  change of variables gives log p of the *ODE's* model,

      log p(x) = log p_T(y_T) + integral of div f along the path from the data to the noise end.

  For DDPM / DDIM schedulers it is written in the DDIM variables y = x / sqrt(abar) and sigma =
  sqrt((1 - abar) / abar), where dy/dsigma = eps_theta(x, t) (Song, Meng & Ermon 2021, eq. 14); it is integrated in
  log sigma from the first trained level to the last with torchdiffeq's adaptive ``dopri5``, and from sigma = 0 to
  the first level with one Euler step. The end distribution is y_T ~ N(0, (1 + sigma_T^2) I), the law of
  x_T ~ N(0, I). For flow matching x_sigma = (1 - sigma) x_0 + sigma eps, dx/dsigma = v_theta(x, sigma T) on [0, 1],
  x_1 ~ N(0, I). The divergence is exact (one backward pass per dimension) for inputs of at most
  :data:`EXACT_TRACE_MAX` values, otherwise Hutchinson's estimate with one Rademacher probe per input held fixed
  along the path (unbiased for log p; its spread over probes is what ``probes > 1`` averages away).
- **Diffusion priors**, ELBO and IWAE (Tu et al., eq. 23; the digest's correction): one forward chain
  x -> x_{t_1} -> ... -> x_{t_K} drawn from q gives log w = log p(x_{t_K}) + sum log p_theta(x_s | x_t) - sum
  log q(x_t | x_s) with E_q[w] = p_theta(x). Its mean over chains is the ELBO, a *lower bound* on log p_theta(x)
  (Tu et al.'s "NLL" is minus one such draw: an upper bound on the NLL, not the NLL); the log-mean-exp over K chains
  (IWAE) is a bound that tightens to log p_theta(x) as K grows, i.e. a consistent estimate. The reverse kernels are
  the DDPM posterior Gaussians of the sampler's grid (variance (1 - abar_s)/(1 - abar_t) (1 - abar_t/abar_s)) except
  the last, where that variance is 0 and the forward variance 1 - abar_{t_1} is used (Tu et al. eq. 19's first
  choice). p_theta here is the DDPM chain on that grid; the ODE's density is a different model of the same denoiser.

All values are log-densities of data-space inputs in nats per input (the normalization's log-Jacobian included).
"""

from __future__ import annotations

import math

import torch

from zoo.flow_prior import FlowPrior
from zoo.priors import DiffusionPrior, Prior, _bcast, _randn

EXACT_TRACE_MAX = 64
"""Inputs with at most this many values get the exact divergence; larger ones Hutchinson's estimate."""


def flow_log_prob(prior: FlowPrior, x: torch.Tensor) -> torch.Tensor:
    """Exact log p(x) of data-space inputs (B, D) under a flow prior."""
    with torch.no_grad():
        return prior.log_prob(x.to(prior.device))


def _data_jacobian(prior: Prior, x: torch.Tensor) -> float:
    return -x[0].numel() * math.log(prior.norm_std)


def _gaussian(x: torch.Tensor, mean: torch.Tensor, var: float) -> torch.Tensor:
    """log N(x; mean, var I) per input, for a scalar variance."""
    d = x[0].numel()
    return -0.5 * ((x - mean).pow(2).flatten(1).sum(1) / var + d * math.log(2 * math.pi * var))


def diffusion_log_weights(
    prior: DiffusionPrior,
    x: torch.Tensor,
    *,
    chains: int = 1,
    num_steps: int = 50,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """log w of ``chains`` forward chains per input (see the module docstring), shape (chains, B), data space."""
    if prior.parametrization == "flow":
        raise ValueError("the ELBO / IWAE need a DDPM or DDIM prior (a stochastic chain); use the 'likelihood' score")
    x0 = prior.from_data(x.to(prior.device))
    ts = prior.timesteps(num_steps).flip(0)  # -1 (data), t_1, ..., t_K
    eta = None if prior.scheduler_class == "DDPMScheduler" else 1.0  # the DDPM posterior mean, as the sampler's
    out = []
    with torch.no_grad():
        for _ in range(int(chains)):
            cur, logw = x0, torch.zeros(len(x0), device=x0.device)
            path = [x0]
            for s, t in zip(ts[:-1], ts[1:]):  # forward: x_s -> x_t
                r = float(prior.alpha_bar(t.view(1)) / prior.alpha_bar(s.view(1)))
                nxt = math.sqrt(r) * cur + math.sqrt(1 - r) * _randn(cur.shape, generator, cur)
                logw = logw - _gaussian(nxt, math.sqrt(r) * cur, 1 - r)
                path.append(nxt)
                cur = nxt
            logw = logw + _gaussian(cur, torch.zeros_like(cur), 1.0)
            for k in range(len(ts) - 1, 0, -1):  # reverse kernels p(x_s | x_t)
                t, s = ts[k], ts[k - 1]
                mean = prior.step(path[k], t, s, eta=eta, noise=torch.zeros_like(cur))
                a_t, a_s = prior.alpha_bar(t.view(1)), prior.alpha_bar(s.view(1))
                var = (1 - a_s) / (1 - a_t) * (1 - a_t / a_s)
                if float(var) <= 0:
                    var = 1 - a_t / a_s
                logw = logw + _gaussian(path[k - 1], mean, float(var))
            out.append(logw + _data_jacobian(prior, x0))
    return torch.stack(out)


def elbo(prior: DiffusionPrior, x: torch.Tensor, *, chains: int = 1, **kw) -> torch.Tensor:
    """The ELBO (a lower bound on log p_theta(x)) averaged over ``chains`` forward chains, shape (B,)."""
    return diffusion_log_weights(prior, x, chains=chains, **kw).mean(0)


def iwae(prior: DiffusionPrior, x: torch.Tensor, *, chains: int = 16, **kw) -> torch.Tensor:
    """The IWAE bound log mean_k w_k over ``chains`` chains, shape (B,): >= the ELBO of the same chains and a
    consistent estimate of log p_theta(x) as ``chains`` grows."""
    lw = diffusion_log_weights(prior, x, chains=chains, **kw)
    return torch.logsumexp(lw, 0) - math.log(lw.shape[0])


class _Field:
    """The ODE's vector field with the divergence, in the variable u (log sigma for DDPM / DDIM, sigma for flow)."""

    def __init__(self, prior: DiffusionPrior, probe: torch.Tensor | None) -> None:
        self.prior, self.probe, self.nfe = prior, probe, 0
        if prior.parametrization != "flow":
            abar = prior.alphas_cumprod.double()
            self.log_sigma = (0.5 * ((1 - abar) / abar).log()).float()

    def time(self, u: torch.Tensor) -> torch.Tensor:
        """Model time t at the ODE variable u (piecewise-linear in log sigma between the trained integer times)."""
        if self.prior.parametrization == "flow":
            return u * self.prior.num_train_timesteps
        ls = self.log_sigma.to(u.device)
        i = torch.searchsorted(ls, u.reshape(1)).clamp(1, len(ls) - 1)
        w = (u - ls[i - 1]) / (ls[i] - ls[i - 1])
        return (i - 1 + w.clamp(0, 1)).reshape(())

    def velocity(self, y: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        p = self.prior
        t = self.time(u)
        if p.parametrization == "flow":
            return p.model_output(y, t)
        sigma = u.exp()
        abar = 1 / (1 + sigma**2)
        x = y * abar.sqrt()
        out = p.model_output(x, t)
        a = _bcast(abar.expand(len(y)), y)
        if p.parametrization == "epsilon":
            eps = out
        elif p.parametrization == "v_prediction":
            eps = a.sqrt() * out + (1 - a).sqrt() * x
        else:
            eps = (x - a.sqrt() * out) / (1 - a).sqrt()
        return sigma * eps  # dy/dlog(sigma) = sigma dy/dsigma

    def __call__(self, u: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        y = state[0]
        self.nfe += 1
        with torch.enable_grad():
            y = y.detach().requires_grad_(True)
            f = self.velocity(y, u)
            div = divergence(f, y, self.probe)
        return f.detach(), div.detach()


def divergence(f: torch.Tensor, y: torch.Tensor, probe: torch.Tensor | None) -> torch.Tensor:
    """div_y f per input (B,): exact with ``probe=None`` (one backward pass per value), else Hutchinson's
    v^T (df/dy) v with the given probe v (shape of y)."""
    if probe is not None:
        (g,) = torch.autograd.grad(f, y, probe, retain_graph=False)
        return (g * probe).flatten(1).sum(1)
    flat = f.flatten(1)
    div = torch.zeros(len(y), device=y.device, dtype=y.dtype)
    for i in range(flat.shape[1]):
        (g,) = torch.autograd.grad(flat[:, i].sum(), y, retain_graph=True)
        div = div + g.flatten(1)[:, i]
    return div


def ode_log_prob(
    prior: DiffusionPrior,
    x: torch.Tensor,
    *,
    rtol: float = 1e-4,
    atol: float = 1e-4,
    probes: int = 1,
    exact_trace: bool | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """log p(x) of data-space inputs (B, *shape) under the prior's probability-flow ODE, shape (B,).

    Arguments:
        prior: a diffusion or flow-matching prior.
        x: inputs in data space.
        rtol, atol: tolerances of the adaptive dopri5 solver (torchdiffeq).
        probes: Hutchinson probes averaged per input (ignored with the exact trace).
        exact_trace: exact divergence; default: when an input has at most :data:`EXACT_TRACE_MAX` values.
        generator: randomness of the probes.
    """
    from torchdiffeq import odeint

    x0 = prior.from_data(x.to(prior.device)).float()
    exact = x0[0].numel() <= EXACT_TRACE_MAX if exact_trace is None else bool(exact_trace)
    runs = 1 if exact else int(probes)
    total = torch.zeros(len(x0), device=x0.device)
    for _ in range(runs):
        probe = None if exact else (torch.randint(0, 2, x0.shape, generator=generator).float() * 2 - 1).to(x0)
        field = _Field(prior, probe)
        if prior.parametrization == "flow":
            y0, delta, lo, hi = x0, torch.zeros_like(total), 0.0, 1.0
        else:
            # sigma = 0 -> first trained level: one Euler step of dy/dsigma = eps(x, t = 0)
            lo, hi = float(field.log_sigma[0]), float(field.log_sigma[-1])
            with torch.enable_grad():
                y = x0.detach().requires_grad_(True)
                f = field.velocity(y, torch.tensor(lo, device=x0.device))  # = sigma_0 eps(x, 0)
                delta = divergence(f, y, probe).detach()
            y0 = (x0 + f).detach()
        u = torch.tensor([lo, hi], device=x0.device)
        ys, divs = odeint(field, (y0, torch.zeros_like(total)), u, rtol=rtol, atol=atol, method="dopri5")
        y_end, integral = ys[-1], divs[-1]
        var_end = 1.0 if prior.parametrization == "flow" else 1.0 + math.exp(2 * hi)
        total = total + _gaussian(y_end, torch.zeros_like(y_end), var_end) + integral + delta
    return total / runs + _data_jacobian(prior, x0)


__all__ = [
    "EXACT_TRACE_MAX",
    "diffusion_log_weights",
    "divergence",
    "elbo",
    "flow_log_prob",
    "iwae",
    "ode_log_prob",
]
