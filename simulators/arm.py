"""Inverse kinematics of a planar arm on a vertical rail (Ardizzone thesis, section 4.2.2, appendix B.3).

theta = (x1, x2, x3, x4): rail position x1 and three joint angles, prior x_i ~ N(0, sigma_i^2) with
sigma = (0.25, 0.5, 0.5, 0.5). Segment lengths l = (0.5, 0.5, 1.0). Thesis convention (default)::

    y1 = x1 + l1 sin(x2) + l2 sin(x3 - x2) + l3 sin(x4 - x2 - x3)
    y2 =      l1 cos(x2) + l2 cos(x3 - x2) + l3 cos(x4 - x2 - x3)

``variant="cumulative"`` follows the public benchmark code (segment angles x2, x2+x3, x2+x3+x4)::

    y1 =      l1 cos(x2) + l2 cos(x2 + x3) + l3 cos(x2 + x3 + x4)
    y2 = x1 + l1 sin(x2) + l2 sin(x2 + x3) + l3 sin(x2 + x3 + x4)

Both are "rail coordinate h = x1 + sum_i l_i sin(a_i)" and "reach v = sum_i l_i cos(a_i)" with segment angles a_i;
they differ in the angles and in the order of (h, v). With ``noise_std > 0`` the end point is observed with
isotropic Gaussian noise, and a likelihood exists.

Set-valued observations (``n_obs``, BayesFlow-style): with ``n_obs=K`` every theta produces a *set* of K i.i.d.
noisy end points, shape (*, K, 2); ``n_obs=(lo, hi)`` (or ``"lo-hi"``) declares a range of set sizes, so that one
amortized estimator serves any K in it (``simulate(theta, n_obs=k)`` picks the size; the default is ``hi``). For
Gaussian noise the set mean is a sufficient statistic: p(theta | y_1..K) = p(theta | ybar) with noise
``noise_std / sqrt(K)``, which is how the exact reference posterior of a set is computed.

The exact reference posterior draws (x2, x3) from the prior, solves (x4, x1) for the two branches of the last
segment's angle, and importance-weights each solution by prior(x1) prior(x4) / |det d(y)/d(x1, x4)|
(= l3 |sin a3|), then resamples. This is exact up to the resampling: no tolerance.
"""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch

from simulators.protocol import check_observation, check_theta, expand_to_set, parse_set_size

SIGMA = (0.25, 0.5, 0.5, 0.5)
LENGTHS = (0.5, 0.5, 1.0)


class Arm:
    """The 4-parameter arm on a rail. See the module docstring for the equations.

    Arguments:
        variant: ``"thesis"`` (default) or ``"cumulative"``.
        noise_std: standard deviation of Gaussian noise on the end point (0 = deterministic, as in the thesis).
        n_obs: ``None`` (default: one end point per theta, shape (*, 2)); an int K (a set of K i.i.d. noisy end
            points, shape (*, K, 2)); or a range ``(lo, hi)`` / ``"lo-hi"`` of set sizes. Needs ``noise_std > 0``.

    Attributes:
        n_obs: present only for set-valued observations: the ``(lo, hi)`` range of set sizes.
        element_shape: present only for set-valued observations: the shape of one set element, ``(2,)``.

    Example:
        >>> import torch, simulators
        >>> arm = simulators.get("arm")
        >>> arm.simulate(torch.zeros(4))  # straight up, rail at 0
        tensor([0., 2.])
    """

    name = "arm"
    param_names = ("rail", "angle1", "angle2", "angle3")
    observation_names = ("y1", "y2")
    obs_shape = (2,)

    def __init__(
        self, *, variant: str = "thesis", noise_std: float = 0.0, n_obs: int | tuple[int, int] | str | None = None
    ) -> None:
        if variant not in ("thesis", "cumulative"):
            raise ValueError(f"variant must be 'thesis' or 'cumulative', got {variant!r}")
        if isinstance(noise_std, bool) or not isinstance(noise_std, int | float) or not 0 <= noise_std < math.inf:
            raise ValueError(f"noise_std must be a finite number >= 0, got {noise_std!r}")
        self.variant = variant
        self.noise_std = float(noise_std)
        self.options = {"variant": variant, "noise_std": self.noise_std}
        self.sigma = torch.tensor(SIGMA)
        self.lengths = LENGTHS
        self.prior = dist.Normal(torch.zeros(4), self.sigma).to_event(1)
        if self.noise_std > 0:
            self.log_likelihood = self._log_likelihood
        if n_obs is not None:
            lo, hi = parse_set_size(n_obs)
            if self.noise_std == 0:
                raise ValueError("n_obs needs noise_std > 0: without noise the K end points of a set are identical")
            self.n_obs = (lo, hi)
            self.element_shape = (2,)
            self.obs_shape = (hi, 2)
            self.options["n_obs"] = lo if lo == hi else [lo, hi]

    # -- geometry -------------------------------------------------------------------------------------------
    def segment_angles(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The angles a1, a2, a3 of the three segments (measured from the reach direction)."""
        x2, x3, x4 = theta[..., 1], theta[..., 2], theta[..., 3]
        if self.variant == "thesis":
            return x2, x3 - x2, x4 - x2 - x3
        return x2, x2 + x3, x2 + x3 + x4

    def joints(self, theta: torch.Tensor) -> torch.Tensor:
        """Positions of the rail joint and the three segment ends in observation coordinates, shape (*, 4, 2)."""
        theta = check_theta(theta, 4)
        a = self.segment_angles(theta)
        h, v = [theta[..., 0]], [torch.zeros_like(theta[..., 0])]
        for length, ai in zip(self.lengths, a):
            h.append(h[-1] + length * torch.sin(ai))
            v.append(v[-1] + length * torch.cos(ai))
        h, v = torch.stack(h, -1), torch.stack(v, -1)
        return torch.stack((h, v) if self.variant == "thesis" else (v, h), -1)

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        """The noise-free end point, shape (*, 2)."""
        a1, a2, a3 = self.segment_angles(theta)
        l1, l2, l3 = self.lengths
        h = theta[..., 0] + l1 * torch.sin(a1) + l2 * torch.sin(a2) + l3 * torch.sin(a3)
        v = l1 * torch.cos(a1) + l2 * torch.cos(a2) + l3 * torch.cos(a3)
        return torch.stack((h, v) if self.variant == "thesis" else (v, h), -1)

    def simulate(
        self, theta: torch.Tensor, *, generator: torch.Generator | None = None, n_obs: int | None = None
    ) -> torch.Tensor:
        """End points y for parameters theta: (*, 4) -> (*, 2), or sets of them, (*, K, 2).

        Arguments:
            theta: parameters, shape (*, 4).
            generator: source of the observation noise.
            n_obs: set size K of this call (set-valued simulators only; default: the top of the ``n_obs`` range).
        """
        y = expand_to_set(self, self.forward(check_theta(theta, 4)), n_obs)
        if self.noise_std > 0:
            y = y + self.noise_std * torch.randn(y.shape, generator=generator, device=y.device, dtype=y.dtype)
        return y

    def _log_likelihood(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log N(x; f(theta), noise_std^2 I), batched: (*, 4), (*, 2) -> (*); for sets (*, K, 2), summed over K."""
        y = self.forward(check_theta(theta, 4))
        if hasattr(self, "n_obs"):
            x = self._check_set(x)
            return dist.Normal(y.unsqueeze(-2), self.noise_std).log_prob(x).sum((-2, -1))
        return dist.Normal(y, self.noise_std).log_prob(x).sum(-1)

    def _check_set(self, x: torch.Tensor, name: str = "x") -> torch.Tensor:
        x = check_observation(x, (2,), name)
        if x.ndim < 2:
            raise ValueError(f"{name} must be a set of end points of shape (*, K, 2), got {tuple(x.shape)}")
        if x.shape[-2] == 0:
            raise ValueError(f"{name} is an empty set (K = 0); expected at least one end point of shape (2,)")
        return x

    # -- exact posterior ------------------------------------------------------------------------------------
    def reference_posterior(
        self,
        x_o: torch.Tensor,
        n: int,
        *,
        generator: torch.Generator | None = None,
        proposals: int | None = None,
        return_ess: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Exact posterior samples by analytic solution plus importance resampling.

        Arguments:
            x_o: observed end point(s), shape (*batch, 2).
            n: number of samples per observation.
            generator: source of randomness.
            proposals: proposals per observation (default ``max(20 n, 20000)``).
            return_ess: also return the importance-sampling effective sample size per observation.

        Returns:
            samples of shape (n, *batch, 4), and with ``return_ess`` the ESS, shape (*batch).

        Raises:
            ValueError: if an observation is out of the arm's reach under the prior (no valid solution found).
        """
        noise = self.noise_std
        if hasattr(self, "n_obs"):
            # the set mean is sufficient for Gaussian noise: condition on it with noise / sqrt(K)
            x_o = self._check_set(x_o, "x_o")
            noise = noise / math.sqrt(x_o.shape[-2])
            x_o = x_o.mean(-2)
        x_o = check_observation(x_o, (2,))
        batch = x_o.shape[:-1]
        flat = x_o.reshape(-1, 2)
        m = proposals or max(20 * n, 20000)
        out, ess = [], []
        # Bound memory: handle observations one at a time, proposals in one vectorized pass each.
        for y in flat:
            s, e = self._reference_one(y, n, m, generator, noise)
            out.append(s)
            ess.append(e)
        samples = torch.stack(out, 1).reshape(n, *batch, 4)
        if return_ess:
            return samples, torch.stack(ess).reshape(batch)
        return samples

    def _reference_one(
        self, y: torch.Tensor, n: int, m: int, generator, noise: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        kw = {"device": y.device, "dtype": y.dtype}
        sigma = self.sigma.to(**kw)
        l1, l2, l3 = self.lengths
        x2 = sigma[1] * torch.randn(m, generator=generator, **kw)
        x3 = sigma[2] * torch.randn(m, generator=generator, **kw)
        target = y
        if noise > 0:  # joint proposal over the noise: marginalizes to the noisy-likelihood posterior
            target = y - noise * torch.randn(m, 2, generator=generator, **kw)
        h_o, v_o = (target[..., 0], target[..., 1]) if self.variant == "thesis" else (target[..., 1], target[..., 0])
        if self.variant == "thesis":
            a1, a2 = x2, x3 - x2
        else:
            a1, a2 = x2, x2 + x3
        cos_a3 = (v_o - l1 * torch.cos(a1) - l2 * torch.cos(a2)) / l3
        valid = cos_a3.abs() < 1
        base = torch.acos(cos_a3.clamp(-1, 1))
        thetas, logw = [], []
        for a3 in (base, -base):  # the two branches of the last segment's angle
            x4 = a3 + x2 + x3 if self.variant == "thesis" else a3 - x2 - x3
            x1 = h_o - l1 * torch.sin(a1) - l2 * torch.sin(a2) - l3 * torch.sin(a3)
            lw = (
                dist.Normal(0.0, sigma[0]).log_prob(x1)
                + dist.Normal(0.0, sigma[3]).log_prob(x4)
                - torch.log(l3 * torch.sin(a3).abs())
            )
            thetas.append(torch.stack((x1, x2, x3, x4), -1))
            logw.append(torch.where(valid, lw, torch.full_like(lw, -math.inf)))
        theta = torch.cat(thetas)
        logw = torch.cat(logw)
        if not torch.isfinite(logw).any():
            raise ValueError(
                f"observation {y.tolist()} is out of the arm's reach: no prior draw of the first two joints "
                "admits a solution; expected an end point the arm can reach"
            )
        w = torch.softmax(logw, 0)
        ess = 1.0 / (w**2).sum()
        idx = torch.multinomial(w, n, replacement=True, generator=generator)
        return theta[idx], ess
