"""Tasks of the sbibm benchmark suite (Lueckmann et al. 2021) that need no external software, with ground truth.

Each task is a simulator with an exact log-likelihood and a reference posterior (``reference_posterior(x_o, n)``):

- ``two-moons``: theta in U(-1, 1)^2; x (2) a noisy half circle moved by (-|t1 + t2| / sqrt 2, (t2 - t1) / sqrt 2).
  Reference exact: draw the circle, invert both branches, keep draws inside the prior.
- ``gaussian-linear``: theta ~ N(0, 0.1 I) in 10-D, x ~ N(theta, 0.1 I). Reference exact: N(x / 2, 0.05 I).
- ``gaussian-linear-uniform``: theta ~ U(-1, 1)^10, x ~ N(theta, 0.1 I). Reference exact: N(x, 0.1 I) truncated to
  the box, coordinate by coordinate.
- ``slcp``: theta ~ U(-3, 3)^5; x (8) four 2-D Gaussian draws with mean (t1, t2), standard deviations t3^2, t4^2 and
  correlation tanh(t5). Reference by MCMC (below).
- ``bernoulli-glm``: theta (10) ~ N(0, B^-1), a smoothness prior; x (10) the sufficient statistics of 100 Bernoulli
  spikes of a GLM neuron under a fixed white-noise stimulus. Reference by MCMC from the Laplace approximation.

The definitions follow sbibm's task code and paper (variances and offsets included: slcp's covariance has
``t3^4`` on the diagonal plus 1e-6, as sbibm's). The observations zoo benchmarks on are its own (drawn from the prior
with a fixed seed, see benchmarks/sbibm.py), not sbibm's stored files, so published numbers compare as averages.

slcp's posterior has four symmetric modes (its likelihood depends on t3 and t4 only through their squares). Its
reference draws fold t3, t4 to >= 0, start chains by sampling-importance-resampling from prior draws, run a
population random-walk Metropolis with reflection at 0 (a symmetric proposal) whose covariance is re-estimated from the
chains, and give each draw independent random signs of t3 and t4 at the end: exact symmetry, so the four modes are
balanced exactly rather than by mixing. These references are checked by simulation-based calibration against prior
draws (tests/simulators/test_sbibm.py).
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch

from simulators.protocol import check_observation, check_theta

_SQRT2 = math.sqrt(2.0)


def _box(lo: float, hi: float, dim: int) -> dist.Distribution:
    return dist.Uniform(torch.full((dim,), lo), torch.full((dim,), hi)).to_event(1)


def _obs(x_o: torch.Tensor, shape: tuple[int, ...]) -> tuple[torch.Tensor, tuple[int, ...]]:
    x_o = check_observation(torch.as_tensor(x_o), shape).double()
    batch = tuple(x_o.shape[: x_o.ndim - len(shape)])
    return x_o.reshape(-1, *shape), batch


class TwoMoons:
    """sbibm's two moons: a crescent-shaped, bimodal posterior in 2-D.

    Example:
        >>> import torch, simulators
        >>> tm = simulators.get("two-moons")
        >>> tm.reference_posterior(torch.zeros(2), 100, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([100, 2])
    """

    name = "two-moons"
    param_names = ("theta1", "theta2")
    obs_shape = (2,)
    observation_names = ("x1", "x2")
    radius, radius_std, offset = 0.1, 0.01, 0.25

    def __init__(self) -> None:
        self.options: dict = {}
        self.prior = _box(-1.0, 1.0, 2)

    def _shift(self, theta: torch.Tensor) -> torch.Tensor:
        z0 = (theta[..., 0] + theta[..., 1]) / _SQRT2
        z1 = (theta[..., 1] - theta[..., 0]) / _SQRT2
        return torch.stack([-z0.abs(), z1], -1)

    def _crescent(self, shape: tuple[int, ...], like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        a = (torch.rand(shape, generator=generator, dtype=like.dtype) - 0.5) * math.pi
        r = self.radius + self.radius_std * torch.randn(shape, generator=generator, dtype=like.dtype)
        return torch.stack([r * a.cos() + self.offset, r * a.sin()], -1).to(like.device)

    def simulate(self, theta: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """x = crescent draw + shift(theta): (*, 2) -> (*, 2)."""
        theta = check_theta(theta, 2)
        return self._crescent(tuple(theta.shape[:-1]), theta, generator) + self._shift(theta)

    def log_likelihood(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x | theta): the crescent's density at x - shift(theta) (polar change of variables)."""
        p = x - self._shift(theta)
        dx, dy = p[..., 0] - self.offset, p[..., 1]
        r, a = torch.sqrt(dx**2 + dy**2), torch.atan2(dy, dx)
        log_r = -0.5 * ((r - self.radius) / self.radius_std) ** 2 - math.log(self.radius_std * math.sqrt(2 * math.pi))
        inside = a.abs() <= math.pi / 2
        return torch.where(inside, log_r - math.log(math.pi) - r.log(), torch.full_like(r, -math.inf))

    def reference_posterior(
        self, x_o: torch.Tensor, n: int, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Exact posterior draws (n, *batch, 2): crescent draws p, theta from both branches of x - p, kept in the prior.

        The map theta -> shift(theta) is a rotation folded in two, volume-preserving on each branch, so drawing p from
        the crescent, a branch with probability 1/2, and keeping draws inside the prior box draws p(theta | x) exactly.
        """
        x, batch = _obs(x_o, self.obs_shape)
        out = torch.empty(n, len(x), 2, dtype=torch.float64)
        for j, xj in enumerate(x):
            out[:, j] = _rejection(lambda m, xj=xj: self._branches(xj, m, generator), n, f"x_o = {xj.tolist()}")
        return out.reshape(n, *batch, 2).to(torch.as_tensor(x_o).dtype)

    def _branches(self, x: torch.Tensor, m: int, generator: torch.Generator | None) -> torch.Tensor:
        q = x - self._crescent((m,), x, generator)  # = (-|z0|, z1)
        sign = torch.where(torch.rand(m, generator=generator, dtype=x.dtype) < 0.5, -1.0, 1.0)
        z0, z1 = -q[:, 0] * sign, q[:, 1]
        theta = torch.stack([(z0 - z1) / _SQRT2, (z0 + z1) / _SQRT2], -1)
        ok = (q[:, 0] <= 0) & (theta.abs() <= 1).all(-1)
        return theta[ok]


class GaussianLinear:
    """sbibm's gaussian linear: prior N(0, 0.1 I), x ~ N(theta, 0.1 I) in 10-D; the posterior is N(x / 2, 0.05 I).

    Arguments:
        dim: dimension (sbibm: 10).
    """

    name = "gaussian-linear"
    variance = 0.1

    def __init__(self, *, dim: int = 10) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= 1000:
            raise ValueError(f"dim must be an integer in [1, 1000], got {dim!r}")
        self.dim = dim
        self.options = {"dim": dim}
        self.param_names = tuple(f"theta{i + 1}" for i in range(dim))
        self.observation_names = tuple(f"x{i + 1}" for i in range(dim))
        self.obs_shape = (dim,)
        self.prior = self._prior()

    def _prior(self) -> dist.Distribution:
        return dist.Normal(torch.zeros(self.dim), math.sqrt(self.variance)).to_event(1)

    def simulate(self, theta: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """x = theta + N(0, 0.1 I): (*, dim) -> (*, dim)."""
        theta = check_theta(theta, self.dim)
        noise = torch.randn(theta.shape, generator=generator, dtype=theta.dtype).to(theta.device)
        return theta + math.sqrt(self.variance) * noise

    def log_likelihood(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log N(x; theta, 0.1 I)."""
        return dist.Normal(theta, math.sqrt(self.variance)).log_prob(x).sum(-1)

    def reference_posterior(
        self, x_o: torch.Tensor, n: int, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Exact posterior draws (n, *batch, dim): N(x / 2, 0.05 I)."""
        x, batch = _obs(x_o, self.obs_shape)
        z = torch.randn(n, *x.shape, generator=generator, dtype=x.dtype)
        return (x / 2 + math.sqrt(self.variance / 2) * z).reshape(n, *batch, self.dim).to(torch.as_tensor(x_o).dtype)


class GaussianLinearUniform(GaussianLinear):
    """sbibm's gaussian linear uniform: prior U(-1, 1)^10, x ~ N(theta, 0.1 I); the posterior is N(x, 0.1 I) truncated
    to the box, coordinate by coordinate (drawn exactly by the inverse CDF)."""

    name = "gaussian-linear-uniform"

    def _prior(self) -> dist.Distribution:
        return _box(-1.0, 1.0, self.dim)

    def reference_posterior(
        self, x_o: torch.Tensor, n: int, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Exact posterior draws (n, *batch, dim) of the truncated normal."""
        x, batch = _obs(x_o, self.obs_shape)
        sd = math.sqrt(self.variance)
        # mirror coordinates with x > 0 so that the box lies on the normal's left tail side, where the CDF is accurate
        flip = torch.where(x > 0, -1.0, 1.0).double()
        mu = x * flip
        lo, hi = torch.special.ndtr((-1 - mu) / sd), torch.special.ndtr((1 - mu) / sd)
        u = torch.rand(n, *x.shape, generator=generator, dtype=torch.float64)
        draw = mu + sd * torch.special.ndtri(lo + u * (hi - lo))
        draw = (draw.clamp(-1.0, 1.0) * flip).reshape(n, *batch, self.dim)
        return draw.to(torch.as_tensor(x_o).dtype)


class SLCP:
    """sbibm's simple likelihood, complex posterior: 5 parameters, four 2-D Gaussian draws with a nonlinear covariance.

    Example:
        >>> import torch, simulators
        >>> slcp = simulators.get("slcp")
        >>> theta = torch.tensor([0.7, -2.9, -1.0, -0.9, 0.6])
        >>> slcp.simulate(theta, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([8])
    """

    name = "slcp"
    param_names = ("theta1", "theta2", "theta3", "theta4", "theta5")
    obs_shape = (8,)
    observation_names = ("x1a", "x1b", "x2a", "x2b", "x3a", "x3b", "x4a", "x4b")
    draws, eps = 4, 1e-6

    def __init__(self) -> None:
        self.options: dict = {}
        self.prior = _box(-3.0, 3.0, 5)

    def _moments(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        m = theta[..., :2]
        s1, s2, rho = theta[..., 2] ** 2, theta[..., 3] ** 2, torch.tanh(theta[..., 4])
        return m, s1**2 + self.eps, s2**2 + self.eps, rho * s1 * s2

    def simulate(self, theta: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Four draws of N(m, S) flattened: (*, 5) -> (*, 8)."""
        theta = check_theta(theta, 5)
        m, v1, v2, c = self._moments(theta)
        z = torch.randn(*theta.shape[:-1], self.draws, 2, generator=generator, dtype=theta.dtype).to(theta.device)
        l11 = v1.sqrt()  # Cholesky factor of [[v1, c], [c, v2]]
        l21 = c / l11
        l22 = (v2 - l21**2).clamp_min(0).sqrt()
        a = l11.unsqueeze(-1) * z[..., 0]
        b = l21.unsqueeze(-1) * z[..., 0] + l22.unsqueeze(-1) * z[..., 1]
        x = torch.stack([a, b], -1) + m.unsqueeze(-2)
        return x.reshape(*theta.shape[:-1], 2 * self.draws)

    def log_likelihood(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x | theta): the sum of four bivariate normal log-densities; theta (*, 5), x broadcastable (*, 8)."""
        m, v1, v2, c = self._moments(theta)
        d = x.reshape(*x.shape[:-1], self.draws, 2) - m.unsqueeze(-2)
        det = v1 * v2 - c**2
        quad = v2.unsqueeze(-1) * d[..., 0] ** 2 - 2 * c.unsqueeze(-1) * d[..., 0] * d[..., 1]
        quad = (quad + v1.unsqueeze(-1) * d[..., 1] ** 2) / det.unsqueeze(-1)
        return -0.5 * quad.sum(-1) - 0.5 * self.draws * (det.log() + 2 * math.log(2 * math.pi))

    def reference_posterior(
        self,
        x_o: torch.Tensor,
        n: int,
        *,
        generator: torch.Generator | None = None,
        pilot: int = 200_000,
        steps: int = 400,
    ) -> torch.Tensor:
        """Posterior draws (n, *batch, 5) by population Metropolis (module docstring): ``pilot`` prior draws for the
        importance resampling start, ``steps`` Metropolis steps per chain, one chain per draw."""
        x, batch = _obs(x_o, self.obs_shape)
        out = torch.stack([self._mcmc(xj, n, generator, pilot, steps) for xj in x], 1)
        return out.reshape(n, *batch, 5).to(torch.as_tensor(x_o).dtype)

    def _folded_log_post(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        inside = (theta.abs() <= 3).all(-1)
        return torch.where(inside, self.log_likelihood(theta, x), torch.full_like(theta[..., 0], -math.inf))

    def _mcmc(self, x: torch.Tensor, n: int, g: torch.Generator | None, pilot: int, steps: int) -> torch.Tensor:
        folded = torch.tensor([False, False, True, True, False])  # t3, t4 folded to >= 0
        theta = torch.rand(pilot, 5, generator=g, dtype=torch.float64) * 6 - 3
        theta = torch.where(folded, theta.abs(), theta)
        w = torch.softmax(self._folded_log_post(theta, x), 0)  # importance resampling start
        chains = theta[torch.multinomial(w, n, replacement=True, generator=g)]
        chains = _population_metropolis(lambda t: self._folded_log_post(t, x), chains, steps, g, reflect=folded)
        signs = torch.where(torch.rand(n, 2, generator=g, dtype=torch.float64) < 0.5, -1.0, 1.0)
        chains[:, 2:4] *= signs
        return chains


class BernoulliGLM:
    """sbibm's Bernoulli GLM: a 10-parameter generalized linear model of a neuron's spikes under a white-noise stimulus.

    theta = (offset, 9 filter weights), prior N(0, B^-1) with a smoothness precision B (sbibm's). For 100 time bins,
    spikes y_i ~ Bernoulli(sigmoid((X theta)_i)) with X the design matrix of the stimulus (ones, then the stimulus
    lagged by 0..8 bins; the stimulus is N(0, 1) white noise from numpy's RandomState(42), as sbibm draws it). x is
    sbibm's summary (spike count, spike-triggered sums at 9 lags), which equals X^T y: sufficient, so the likelihood
    p(x | theta) is proportional to exp(x . theta - sum_i softplus((X theta)_i)) and the posterior is log-concave.

    Its reference draws start at the Laplace approximation (Newton's method to the mode) and run population
    random-walk Metropolis with the chains' covariance (checked by simulation-based calibration).
    """

    name = "bernoulli-glm"
    param_names = ("offset", *(f"filter{k}" for k in range(1, 10)))
    obs_shape = (10,)
    observation_names = ("spikes", *(f"sta{k}" for k in range(1, 10)))

    def __init__(self) -> None:
        import numpy as np

        self.options: dict = {}
        stimulus = torch.from_numpy(np.random.RandomState(42).randn(100).astype(np.float32)).double()
        design = torch.zeros(100, 10, dtype=torch.float64)
        design[:, 0] = 1.0
        for j in range(9):
            design[j:, j + 1] = stimulus[: 100 - j]
        self.design = design
        diff = torch.eye(9) - torch.diag(torch.ones(8), -1)
        f = diff @ diff + torch.diag(torch.sqrt(torch.arange(9) / 9.0))
        precision = torch.zeros(10, 10)
        precision[0, 0] = 0.5
        precision[1:, 1:] = f.T @ f
        self.precision = precision.double()
        self.prior = dist.MultivariateNormal(torch.zeros(10), precision_matrix=precision)

    def simulate(self, theta: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """x = X^T y with y_i ~ Bernoulli(sigmoid((X theta)_i)): (*, 10) -> (*, 10)."""
        theta = check_theta(theta, 10)
        x_design = self.design.to(theta)
        p = torch.sigmoid(theta @ x_design.T)
        y = (torch.rand(p.shape, generator=generator, dtype=theta.dtype).to(theta.device) < p).to(theta.dtype)
        return y @ x_design

    def log_likelihood(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x | theta) up to a constant in theta (the number of spike trains with summary x)."""
        return (x * theta).sum(-1) - torch.nn.functional.softplus(theta @ self.design.to(theta).T).sum(-1)

    def _log_post(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.log_likelihood(theta, x) - 0.5 * ((theta @ self.precision) * theta).sum(-1)

    def reference_posterior(
        self, x_o: torch.Tensor, n: int, *, generator: torch.Generator | None = None, steps: int = 300
    ) -> torch.Tensor:
        """Posterior draws (n, *batch, 10) by Laplace-started population Metropolis, ``steps`` steps per chain."""
        x, batch = _obs(x_o, self.obs_shape)
        out = torch.stack([self._mcmc(xj, n, generator, steps) for xj in x], 1)
        return out.reshape(n, *batch, 10).to(torch.as_tensor(x_o).dtype)

    def _mcmc(self, x: torch.Tensor, n: int, g: torch.Generator | None, steps: int) -> torch.Tensor:
        mode = torch.zeros(10, dtype=torch.float64)
        for _ in range(50):  # Newton's method: the log posterior is strictly concave
            p = torch.sigmoid(self.design @ mode)
            grad = x - self.design.T @ p - self.precision @ mode
            hess = self.design.T @ (self.design * (p * (1 - p)).unsqueeze(-1)) + self.precision
            step = torch.linalg.solve(hess, grad)
            mode = mode + step
            if float(step.abs().max()) < 1e-10:
                break
        chol = torch.linalg.cholesky(torch.linalg.inv(hess))
        chains = mode + torch.randn(n, 10, generator=g, dtype=torch.float64) @ chol.T
        return _population_metropolis(lambda t: self._log_post(t, x), chains, steps, g)


def _population_metropolis(
    log_target, chains: torch.Tensor, steps: int, g: torch.Generator | None, reflect: torch.Tensor | None = None
) -> torch.Tensor:
    """``steps`` random-walk Metropolis steps of every chain (rows of ``chains``), with the proposal covariance
    2.38^2 / d times the chains' covariance (Gelman et al.), re-estimated every 50 steps; coordinates in ``reflect``
    are reflected at 0 (a symmetric proposal on the folded space)."""
    n, d = chains.shape
    lp = log_target(chains)
    for step in range(steps):
        if step % 50 == 0:
            cov = torch.cov(chains.T) + 1e-10 * torch.eye(d, dtype=chains.dtype)
            chol = torch.linalg.cholesky(cov * (2.38**2 / d))
        prop = chains + torch.randn(n, d, generator=g, dtype=chains.dtype) @ chol.T
        if reflect is not None:
            prop = torch.where(reflect, prop.abs(), prop)
        lp_prop = log_target(prop)
        accept = torch.rand(n, generator=g, dtype=chains.dtype).log() < lp_prop - lp
        chains = torch.where(accept.unsqueeze(-1), prop, chains)
        lp = torch.where(accept, lp_prop, lp)
    return chains


def _rejection(draw, n: int, what: str, batch: int = 65_536, attempts: int = 200) -> torch.Tensor:
    """n draws from ``draw(m) -> accepted rows`` in rounds of ``batch`` proposals."""
    got, total = [], 0
    for _ in range(attempts):
        rows = draw(batch)
        got.append(rows)
        total += len(rows)
        if total >= n:
            return torch.cat(got)[:n]
    raise ValueError(f"{what} is (nearly) impossible under the prior: {total} of {attempts * batch} proposals accepted")
