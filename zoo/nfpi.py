"""NFPI: class-conditional Gaussians N(mu_y, Sigma_y) in a flow's latent, updated by closed-form fixed points
(Enescu & Sahbi, "Learning conditionally untangled latent spaces using fixed point iteration", eqs. 3-7; the digest
../shared/papers/ood-generative-digest.md section 2 corrects the extraction's OCR errors, and those corrected forms
are what is implemented).

The loss is L = L_NF + lambda L_KLD with the repulsion L_KLD = sum_{y != y'} exp(-KLD(N_y || N_y') / (pi alpha)).
Setting its derivative in mu_y and Sigma_y to zero, with everything on the right at the previous iterate, gives
(K classes, c = lambda / (K (K - 1)), K_yy' = (pi alpha)^-1 exp(-KLD(N_y || N_y') / (pi alpha)), delta = mu_y - mu_y'):

    mu_y    = mean_{i in y} z_i + c Sigma_y sum_{y' != y} (K_yy' Sigma_y'^-1 + K_y'y Sigma_y^-1) delta
    Sigma_y = A^-1/2 (A^1/2 B A^1/2)^1/2 A^-1/2           (the geometric mean A^-1 # B: Sigma A Sigma = B)
    A = Sigma_y^-1 (1 + c sum_y' (K_yy' - K_y'y)) + c Sigma_y^-1 [sum_y' K_y'y (delta delta^T + Sigma_y')] Sigma_y^-1
    B = S_y + c sum_y' K_yy' Sigma_y Sigma_y'^-1 Sigma_y,        S_y = the class scatter about the new mu_y.

With diagonal covariances every matrix is diagonal and sigma^2 = sqrt(b / a) per dimension. lambda = 0 (c = 0)
leaves mu_y = the class mean and Sigma_y = Sigma_y # S_y, whose fixed point is the class covariance S_y: started there
(the paper initializes at the class moments) it stays exactly there. pi_KLD: ``"pair"`` — the pair's own KLD
(detached; the paper's eq. 9, which behaves like -sum log KLD) — or ``"mean"``, the mean pairwise KLD (eq. 10).

Stability: the iteration is a fixed point, not a descent, and it diverges when the repulsion dominates. Measured on
four overlapping 3-D classes (tests/zoo/test_nfpi.py's latents): 100 updates stay bounded for c <= 1/6 (the smallest
pairwise KL grows 0.91 -> 1.07 -> 1.44 at c = 0, 0.05, 1/6), reach covariances ~3e3 at c = 0.5 and overflow within 30
updates at c = 1. The paper's settings (CIFAR100: lambda 10-500 with K = 100, c <= 0.05) are in the stable range.
"""

from __future__ import annotations

import torch


def gaussian_kl(mu0: torch.Tensor, s0: torch.Tensor, mu1: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
    """KL(N(mu0, S0) || N(mu1, S1)) for full covariances (D, D) or diagonal ones (D,)."""
    d = mu0.shape[-1]
    delta = mu1 - mu0
    if s0.ndim == 1:
        return 0.5 * ((s0 / s1).sum() + (delta**2 / s1).sum() - d + s1.log().sum() - s0.log().sum())
    inv1 = torch.linalg.inv(s1)
    ld0, ld1 = torch.linalg.slogdet(s0).logabsdet, torch.linalg.slogdet(s1).logabsdet
    return 0.5 * (torch.trace(inv1 @ s0) + delta @ inv1 @ delta - d + ld1 - ld0)


def _sqrtm(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A^1/2 and A^-1/2 of a symmetric positive-definite matrix."""
    w, v = torch.linalg.eigh(0.5 * (a + a.T))
    w = w.clamp(min=torch.finfo(a.dtype).tiny)
    return (v * w.sqrt()) @ v.T, (v / w.sqrt()) @ v.T


def nfpi_update(
    z: torch.Tensor,
    y: torch.Tensor,
    mu: torch.Tensor,
    cov: torch.Tensor,
    *,
    lam: float,
    alpha: float = 1.0,
    pi: str = "pair",
) -> tuple[torch.Tensor, torch.Tensor]:
    """One fixed-point update of the class means and covariances from latents z (N, D) with labels y (N,).

    Arguments:
        mu: current means (K, D).
        cov: current covariances, full (K, D, D) or diagonal variances (K, D).
        lam: lambda, the weight of the repulsion (0: the class moments).
        alpha: the temperature of the repulsion kernel (the paper: 0.1-10).
        pi: ``"pair"`` or ``"mean"`` (module docstring).

    Returns:
        (mu, cov) of the same shapes; covariances stay symmetric positive-definite.
    """
    if pi not in ("pair", "mean"):
        raise ValueError(f"pi must be 'pair' or 'mean', got {pi!r}")
    if lam < 0 or alpha <= 0:
        raise ValueError(f"lambda must be >= 0 and alpha > 0, got {lam!r}, {alpha!r}")
    z, mu, cov = z.detach().double(), mu.detach().double(), cov.detach().double()
    k, d = mu.shape
    diag = cov.ndim == 2
    counts = torch.bincount(y.long(), minlength=k)
    if bool((counts < 2).any()):
        raise ValueError(f"every class needs >= 2 latents in the batch; got counts {counts.tolist()}")
    means = torch.stack([z[y == j].mean(0) for j in range(k)])
    c = lam / (k * (k - 1)) if k > 1 else 0.0
    kl = torch.zeros(k, k, dtype=z.dtype)
    for a in range(k):
        for b in range(k):
            if a != b:
                kl[a, b] = gaussian_kl(mu[a], cov[a], mu[b], cov[b])
    off = ~torch.eye(k, dtype=torch.bool)
    scale = kl.clamp(min=1e-12) if pi == "pair" else kl[off].mean().expand(k, k)
    kern = torch.where(off, torch.exp(-kl / (scale * alpha)) / (scale * alpha), torch.zeros_like(kl))
    inv = 1 / cov if diag else torch.linalg.inv(cov)
    new_mu = means.clone()
    if c:
        for a in range(k):
            push = torch.zeros(d, dtype=z.dtype)
            for b in range(k):
                if a != b:
                    delta = mu[a] - mu[b]
                    push += (
                        (kern[a, b] * inv[b] + kern[b, a] * inv[a]) * delta
                        if diag
                        else (kern[a, b] * inv[b] + kern[b, a] * inv[a]) @ delta
                    )
            new_mu[a] = means[a] + c * (cov[a] * push if diag else cov[a] @ push)
    new_cov = torch.empty_like(cov)
    for a in range(k):
        r = z[y == a] - new_mu[a]
        scatter = (r**2).mean(0) if diag else r.T @ r / len(r)
        shrink = 1 + c * float((kern[a] - kern[:, a]).sum())
        if diag:
            outer = sum(kern[b, a] * ((mu[a] - mu[b]) ** 2 + cov[b]) for b in range(k) if b != a) if c else 0.0
            am = inv[a] * shrink + c * inv[a] * outer * inv[a]
            bm = scatter + (c * sum(kern[a, b] * cov[a] * inv[b] * cov[a] for b in range(k) if b != a) if c else 0.0)
            new_cov[a] = (bm / am).sqrt()
        else:
            am = inv[a] * shrink
            bm = scatter.clone()
            for b in range(k):
                if b != a and c:
                    delta = (mu[a] - mu[b])[:, None]
                    am = am + c * inv[a] @ (kern[b, a] * (delta @ delta.T + cov[b])) @ inv[a]
                    bm = bm + c * kern[a, b] * cov[a] @ inv[b] @ cov[a]
            half, neg_half = _sqrtm(am)
            inner, _ = _sqrtm(half @ bm @ half)
            new_cov[a] = neg_half @ inner @ neg_half
            new_cov[a] = 0.5 * (new_cov[a] + new_cov[a].T)
    return new_mu.to(mu.dtype), new_cov


def class_moments(z: torch.Tensor, y: torch.Tensor, classes: int, *, diagonal: bool = False):
    """The class means (K, D) and covariances (K, D, D) or variances (K, D) of latents z with labels y."""
    z = z.detach().double()
    mu = torch.stack([z[y == j].mean(0) for j in range(classes)])
    cov = []
    for j in range(classes):
        r = z[y == j] - mu[j]
        cov.append((r**2).mean(0) if diagonal else r.T @ r / len(r))
    return mu, torch.stack(cov)


def fpi_step(
    z: torch.Tensor, y: torch.Tensor, mu: torch.Tensor, cov: torch.Tensor, *, lam: float, floor: float = 1e-3
) -> tuple[torch.Tensor, torch.Tensor]:
    """One training-time update of a model's class Gaussians from a batch of latents: the NFPI fixed point
    (:func:`nfpi_update`) when every class has >= 2 latents in the batch and ``lam`` > 0, else the class moments
    for the classes that do (the others keep their Gaussians); variances floored at ``floor`` (full covariances get
    ``floor`` * 1e-3 on the diagonal)."""
    k = mu.shape[0]
    diagonal = cov.ndim == 2
    counts = torch.bincount(y.long(), minlength=k)
    mu, cov = mu.detach().double().clone(), cov.detach().double().clone()
    if lam > 0 and bool((counts >= 2).all()):
        new_mu, new_cov = nfpi_update(z, y, mu, cov, lam=lam)
    else:
        new_mu, new_cov = mu, cov
        for j in torch.nonzero(counts >= 2).reshape(-1).tolist():
            m, c = class_moments(z[y == j], torch.zeros(int(counts[j]), dtype=torch.long), 1, diagonal=diagonal)
            new_mu[j], new_cov[j] = m[0], c[0]
    if diagonal:
        return new_mu, new_cov.clamp(min=floor)
    return new_mu, new_cov + floor * 1e-3 * torch.eye(mu.shape[1], dtype=new_cov.dtype)


__all__ = ["class_moments", "fpi_step", "gaussian_kl", "nfpi_update"]
