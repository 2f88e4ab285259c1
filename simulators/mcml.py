"""Monte Carlo light transport in layered media, in the MCML sense, vectorized in torch.

Photon packets enter a stack of L plane-parallel layers at normal incidence (a pencil beam at the origin; only
totals are tallied, so the lateral position is not tracked). Each layer has an absorption coefficient mu_a and a
scattering coefficient mu_s (1/cm), a Henyey-Greenstein anisotropy g, a refractive index n and a thickness d
(cm; the last layer may be semi-infinite, ``d = inf``). Ambient media above and below have indices n_above,
n_below. The algorithm is the one of Wang, Jacques & Zheng (1995):

- specular reflection at entry, R_sp = ((n_above - n_1) / (n_above + n_1))^2, is reported separately; the packet
  enters with weight 1 - R_sp;
- step sizes s = -ln(xi) / mu_t with mu_t = mu_a + mu_s; a step that reaches a boundary stops there and the
  unused optical depth carries over into the next layer;
- at each interaction the packet deposits w * mu_a / mu_t (absorbed) and scatters by the Henyey-Greenstein phase
  function;
- at a boundary it is reflected with the unpolarized Fresnel probability (total internal reflection included)
  or refracted by Snell's law; a packet leaving through the top adds its weight to the diffuse reflectance R_d,
  through the bottom to the transmittance T;
- Russian roulette below weight 1e-4 with survival probability 0.1 (weight x 10).

Energy is conserved in expectation: R_sp + R_d + T + A = 1 (roulette is unbiased, not conservative per packet).
Standard errors are per-packet sample standard deviations / sqrt(photons), the packets being i.i.d.

All problems of a batch (leading dimensions) and all of their photons run together in flat tensors; dead packets
are compacted out as they accumulate, so the work follows the live packets. This runs on whatever device the
optical properties live on.

References:
    L. Wang, S. L. Jacques, L. Zheng (1995), MCML - Monte Carlo modeling of light transport in multi-layered
    tissues, Computer Methods and Programs in Biomedicine 47:131-146.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

ROULETTE_THRESHOLD = 1e-4  # MCML's W_th
ROULETTE_CHANCE = 0.1  # MCML's CHANCE
_COS_ZERO = 1.0 - 1.0e-12  # MCML: cosine treated as normal incidence
_COS_90 = 1.0e-6  # MCML: cosine treated as grazing incidence


@dataclass(frozen=True)
class MCMLResult:
    """Totals of one MCML run, each of shape ``(*batch)``, as fractions of the incident light.

    Attributes:
        specular: specular reflectance at the top surface (deterministic, no error).
        diffuse: diffuse reflectance R_d (light that entered and left through the top).
        transmittance: total transmittance T (left through the bottom; 0 for a semi-infinite last layer).
        absorbed: absorbed fraction A.
        diffuse_se, transmittance_se, absorbed_se: Monte-Carlo standard errors of the three estimates.
        unfinished: weight of packets still alive after ``max_steps`` (0 unless the cap was hit).
        photons: photon packets per problem.
        steps: total number of photon steps (boundary hits and interactions) over the whole batch.
    """

    specular: torch.Tensor
    diffuse: torch.Tensor
    transmittance: torch.Tensor
    absorbed: torch.Tensor
    diffuse_se: torch.Tensor
    transmittance_se: torch.Tensor
    absorbed_se: torch.Tensor
    unfinished: torch.Tensor
    photons: int
    steps: int


def fresnel(n_i: torch.Tensor, n_t: torch.Tensor, cos_i: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unpolarized Fresnel reflectance and the cosine of the refracted angle.

    Arguments:
        n_i: refractive index of the incident medium, shape (*).
        n_t: refractive index of the transmitting medium, shape (*).
        cos_i: cosine of the angle of incidence, in [0, 1], shape (*).

    Returns:
        ``(r, cos_t)``: the reflectance (1 under total internal reflection) and the cosine of the transmitted
        angle (0 where nothing is transmitted), both shape (*).
    """
    sin_i = torch.sqrt((1.0 - cos_i * cos_i).clamp_min(0.0))
    sin_t = n_i / n_t * sin_i
    tir = sin_t >= 1.0
    cos_t = torch.sqrt((1.0 - sin_t * sin_t).clamp_min(0.0))
    # 0.5 (sin^2(a-b)/sin^2(a+b) + tan^2(a-b)/tan^2(a+b)), written with sines and cosines as in MCML's RFresnel
    cap = cos_i * cos_t - sin_i * sin_t  # cos(a + b)
    cam = cos_i * cos_t + sin_i * sin_t  # cos(a - b)
    sap = sin_i * cos_t + cos_i * sin_t  # sin(a + b)
    sam = sin_i * cos_t - cos_i * sin_t  # sin(a - b)
    denom = (sap * cam) ** 2
    r_oblique = 0.5 * sam * sam * (cam * cam + cap * cap) / torch.where(denom > 0, denom, torch.ones_like(denom))
    r_normal = ((n_i - n_t) / (n_i + n_t)) ** 2
    r = torch.where(cos_i > _COS_ZERO, r_normal, r_oblique)
    r = torch.where(tir | (cos_i < _COS_90), torch.ones_like(r), r)
    r = torch.where(n_i == n_t, torch.zeros_like(r), r)
    cos_t = torch.where(n_i == n_t, cos_i, torch.where(tir, torch.zeros_like(cos_t), cos_t))
    return r.clamp(0.0, 1.0), cos_t


def henyey_greenstein_cos(g: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF sample of the Henyey-Greenstein deflection cosine.

    Arguments:
        g: anisotropy in (-1, 1), shape (*).
        u: uniform numbers in [0, 1), shape (*).

    Returns:
        cosines in [-1, 1], shape (*); isotropic (2u - 1) where |g| < 1e-6.
    """
    small = g.abs() < 1e-6
    g_safe = torch.where(small, torch.full_like(g, 0.5), g)
    tmp = (1.0 - g_safe * g_safe) / (1.0 - g_safe + 2.0 * g_safe * u)
    cos_hg = (1.0 + g_safe * g_safe - tmp * tmp) / (2.0 * g_safe)
    return torch.where(small, 2.0 * u - 1.0, cos_hg).clamp(-1.0, 1.0)


def simulate(
    mu_a: torch.Tensor,
    mu_s: torch.Tensor,
    g: torch.Tensor,
    n: torch.Tensor,
    d: torch.Tensor,
    *,
    n_above: float | torch.Tensor = 1.0,
    n_below: float | torch.Tensor = 1.0,
    photons: int = 10_000,
    generator: torch.Generator | None = None,
    max_steps: int = 100_000,
) -> MCMLResult:
    """Monte Carlo reflectance, transmittance and absorption of layered slabs (see the module docstring).

    Arguments:
        mu_a: absorption coefficients in 1/cm, shape (*batch, L).
        mu_s: scattering coefficients in 1/cm, shape (*batch, L).
        g: Henyey-Greenstein anisotropies, shape (*batch, L).
        n: refractive indices, shape (*batch, L).
        d: thicknesses in cm, shape (*batch, L); only the last layer may be ``inf`` (semi-infinite).
        n_above: refractive index of the ambient medium above, scalar or shape (*batch).
        n_below: refractive index of the ambient medium below, scalar or shape (*batch).
        photons: photon packets per problem.
        generator: source of randomness (on the device of the inputs).
        max_steps: cap on the number of transport steps; the weight of packets alive after it is reported in
            ``unfinished`` (it only matters for media that neither absorb nor let light escape).

    Returns:
        an :class:`MCMLResult` with tensors of shape (*batch).

    Raises:
        ValueError: for mismatched shapes, negative coefficients, |g| >= 1, n <= 0, non-positive or
            misplaced infinite thicknesses, or ``photons < 2``.

    Example:
        >>> import torch
        >>> from simulators import mcml
        >>> one = torch.ones(1)
        >>> r = mcml.simulate(10 * one, 90 * one, 0.75 * one, one, 0.02 * one, photons=20_000,
        ...                   generator=torch.Generator().manual_seed(0))
        >>> abs(r.diffuse.item() - 0.09739) < 4 * r.diffuse_se.item() + 1e-3
        True
    """
    mu_a, mu_s, g, n, d = torch.broadcast_tensors(mu_a, mu_s, g, n, d)
    _check_inputs(mu_a, mu_s, g, n, d, photons)
    device, dtype = mu_a.device, mu_a.dtype
    batch, L = mu_a.shape[:-1], mu_a.shape[-1]
    kw = {"device": device, "dtype": dtype}
    n_above = torch.as_tensor(n_above, **kw).expand(batch).reshape(-1)
    n_below = torch.as_tensor(n_below, **kw).expand(batch).reshape(-1)
    if not (n_above > 0).all() or not (n_below > 0).all():
        raise ValueError("ambient refractive indices n_above and n_below must be > 0")
    B = int(math.prod(batch))
    P = int(photons)

    # Per-problem tables, flattened so that a packet's layer properties are one gather away.
    mut_f = (mu_a + mu_s).reshape(B * L)
    frac_f = torch.where(mut_f > 0, mu_a.reshape(B * L) / mut_f, torch.zeros_like(mut_f))  # mu_a / mu_t
    g_f = g.reshape(B * L)
    n_flat = n.reshape(B, L)
    zero = torch.zeros(B, 1, **kw)
    zb = torch.cat((zero, torch.cumsum(d.reshape(B, L), -1)), -1)  # layer boundaries, (B, L + 1)
    zb_f = zb.reshape(B * (L + 1))
    # Refractive index on the far side of each layer's top and bottom boundary.
    n_up = torch.cat((n_above[:, None], n_flat[:, :-1]), -1).reshape(B * L)
    n_down = torch.cat((n_flat[:, 1:], n_below[:, None]), -1).reshape(B * L)
    n_f = n_flat.reshape(B * L)

    specular = ((n_above - n_flat[:, 0]) / (n_above + n_flat[:, 0])) ** 2

    M = B * P
    pid = torch.arange(M, device=device)  # packet id; its problem is pid // P
    prob = pid // P
    z = torch.zeros(M, **kw)
    ux = torch.zeros(M, **kw)
    uy = torch.zeros(M, **kw)
    uz = torch.ones(M, **kw)
    w = (1.0 - specular).repeat_interleave(P)
    layer = torch.zeros(M, dtype=torch.long, device=device)
    # Properties of each packet's current layer, cached and refreshed only when a packet changes layer.
    li = prob * L  # flat index of (problem, layer)
    mut, frac_abs, g_p = mut_f[li], frac_f[li], g_f[li]
    z_top, z_bot = zb_f[li + prob], zb_f[li + prob + 1]
    s_left = torch.zeros(M, **kw)  # remaining dimensionless optical depth of the current step
    alive = torch.ones(M, dtype=torch.bool, device=device)
    absorbed = torch.zeros(M, **kw)  # weight deposited by each live packet so far
    exit_w = torch.zeros(M, **kw)  # weight with which a packet left: > 0 through the top, < 0 through the bottom

    # Per-packet tallies, written once when a packet is retired (so no scatter on every step).
    R_ph = torch.zeros(M, **kw)
    T_ph = torch.zeros(M, **kw)
    A_ph = torch.zeros(M, **kw)
    unfinished = torch.zeros(M, **kw)

    def retire(mask: torch.Tensor) -> None:
        ids = pid[mask]
        R_ph[ids] = exit_w[mask].clamp_min(0.0)
        T_ph[ids] = (-exit_w[mask]).clamp_min(0.0)
        A_ph[ids] = absorbed[mask]

    steps = 0
    n_alive = M
    for _ in range(max_steps):
        if n_alive == 0:
            break
        steps += n_alive
        # Hop: a fresh optical depth where the last step ended in an interaction; stop at the boundary if reached.
        u = torch.rand(z.shape, generator=generator, **kw)
        s_left = torch.where(s_left > 0, s_left, -torch.log1p(-u))  # -ln(1 - u), u in [0, 1): finite
        step = s_left / mut
        down = uz > 0
        z_wall = torch.where(down, z_bot, z_top)
        dist = torch.where(uz != 0, (z_wall - z) / uz, torch.full_like(z, math.inf))
        hit = dist <= step
        z = torch.where(hit, z_wall, z + step * uz)
        s_left = torch.where(hit, s_left - dist * mut, torch.zeros_like(s_left))

        # Drop: deposit the absorbed part of the weight at interaction sites.
        interact = alive & ~hit
        dw = torch.where(interact, w * frac_abs, torch.zeros_like(w))
        absorbed = absorbed + dw
        w = w - dw

        # Spin: Henyey-Greenstein deflection at interaction sites. u2 also serves the Fresnel draw at boundary
        # hits: a packet either interacts or hits, never both in one step.
        u2 = torch.rand(z.shape, generator=generator, **kw)
        cos_t = henyey_greenstein_cos(g_p, u2)
        sin_t = torch.sqrt((1.0 - cos_t * cos_t).clamp_min(0.0))
        phi = 2.0 * math.pi * torch.rand(z.shape, generator=generator, **kw)
        cos_p, sin_p = torch.cos(phi), torch.sin(phi)
        vertical = uz.abs() > 0.99999
        tmp = torch.sqrt((1.0 - uz * uz).clamp_min(1e-12))
        nux = torch.where(vertical, sin_t * cos_p, sin_t * (ux * uz * cos_p - uy * sin_p) / tmp + ux * cos_t)
        nuy = torch.where(vertical, sin_t * sin_p, sin_t * (uy * uz * cos_p + ux * sin_p) / tmp + uy * cos_t)
        nuz = torch.where(vertical, cos_t * torch.sign(uz), -sin_t * cos_p * tmp + uz * cos_t)
        hit_alive = alive & hit
        ux = torch.where(hit_alive, ux, nux)
        uy = torch.where(hit_alive, uy, nuy)
        uz = torch.where(hit_alive, uz, nuz)

        # Cross: Fresnel reflection or refraction, computed only for the (few) packets at a boundary.
        hi = hit_alive.nonzero().squeeze(-1)
        if hi.numel() > 0:
            h_li, h_uz, h_down = li[hi], uz[hi], down[hi]
            n_i = n_f[h_li]
            n_t = torch.where(h_down, n_down[h_li], n_up[h_li])
            r, cos_tr = fresnel(n_i, n_t, h_uz.abs())
            transmit = u2[hi] >= r
            ratio = torch.where(transmit, n_i / n_t, torch.ones_like(n_i))
            ux[hi] = ux[hi] * ratio
            uy[hi] = uy[hi] * ratio
            uz[hi] = torch.where(transmit, torch.sign(h_uz) * cos_tr, -h_uz)
            h_layer = layer[hi]
            exit_top = transmit & ~h_down & (h_layer == 0)
            exit_bot = transmit & h_down & (h_layer == L - 1)
            inner = transmit & ~exit_top & ~exit_bot
            step_layer = torch.where(inner, torch.where(h_down, 1, -1), 0)
            layer[hi] = h_layer + step_layer
            n_li = h_li + step_layer
            li[hi] = n_li
            mut[hi], frac_abs[hi], g_p[hi] = mut_f[n_li], frac_f[n_li], g_f[n_li]
            h_prob = prob[hi]
            z_top[hi], z_bot[hi] = zb_f[n_li + h_prob], zb_f[n_li + h_prob + 1]
            h_w = w[hi]
            exit_w[hi] = torch.where(exit_top, h_w, torch.where(exit_bot, -h_w, torch.zeros_like(h_w)))
            alive[hi] = ~(exit_top | exit_bot)

        # Roulette for light packets (its own uniform: survival must not depend on this step's deflection).
        low = interact & (w < ROULETTE_THRESHOLD)
        survive = torch.rand(z.shape, generator=generator, **kw) < ROULETTE_CHANCE
        w = torch.where(low, torch.where(survive, w / ROULETTE_CHANCE, torch.zeros_like(w)), w)
        alive = alive & ~(low & ~survive)

        n_alive = int(alive.sum())
        if n_alive < 0.6 * alive.numel():  # compact: retire finished packets, keep the live ones
            retire(~alive)
            keep = alive.nonzero().squeeze(-1)
            z, ux, uy, uz, w, layer, s_left = (t[keep] for t in (z, ux, uy, uz, w, layer, s_left))
            pid, prob, alive, absorbed, exit_w = (t[keep] for t in (pid, prob, alive, absorbed, exit_w))
            li, mut, frac_abs, g_p, z_top, z_bot = (t[keep] for t in (li, mut, frac_abs, g_p, z_top, z_bot))

    retire(~alive)
    if n_alive > 0:
        retire(alive)
        unfinished[pid[alive]] = w[alive]

    def mean_se(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = t.reshape(B, P)
        return t.mean(-1).reshape(batch), (t.std(-1) / math.sqrt(P)).reshape(batch)

    (rd, rd_se), (tt, tt_se), (ab, ab_se) = mean_se(R_ph), mean_se(T_ph), mean_se(A_ph)
    return MCMLResult(
        specular=specular.reshape(batch),
        diffuse=rd,
        transmittance=tt,
        absorbed=ab,
        diffuse_se=rd_se,
        transmittance_se=tt_se,
        absorbed_se=ab_se,
        unfinished=unfinished.reshape(B, P).mean(-1).reshape(batch),
        photons=P,
        steps=steps,
    )


def _check_inputs(mu_a, mu_s, g, n, d, photons) -> None:
    if mu_a.ndim == 0:
        raise ValueError("optical properties must have a last dimension of layers, shape (*batch, L)")
    if not mu_a.is_floating_point():
        raise ValueError(f"optical properties must be floating point, got dtype {mu_a.dtype}")
    for name, t in (("mu_a", mu_a), ("mu_s", mu_s), ("g", g), ("n", n)):
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} must be finite")
    if (mu_a < 0).any() or (mu_s < 0).any():
        raise ValueError("mu_a and mu_s must be >= 0 (1/cm)")
    if (g.abs() >= 1).any():
        raise ValueError("anisotropy g must lie in (-1, 1)")
    if (n <= 0).any():
        raise ValueError("refractive indices n must be > 0")
    if torch.isnan(d).any() or (d <= 0).any():
        raise ValueError("layer thicknesses d must be > 0 (cm)")
    if torch.isinf(d[..., :-1]).any():
        raise ValueError("only the last layer may be semi-infinite (d = inf)")
    if (torch.isinf(d[..., -1]) & (mu_a[..., -1] + mu_s[..., -1] <= 0)).any():
        raise ValueError("a semi-infinite last layer needs mu_a + mu_s > 0")
    if int(photons) < 2:
        raise ValueError(f"photons must be an integer >= 2, got {photons!r}")
