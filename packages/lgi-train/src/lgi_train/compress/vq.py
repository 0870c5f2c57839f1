"""Importance-weighted K-means (c3dgs's sensitivity-aware vector clustering, sized for thousands of
2D Gaussians rather than millions of 3D ones: full batches, exact assignments)."""

from __future__ import annotations

import torch


def _assign(x: torch.Tensor, centers: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
    out = torch.empty(x.shape[0], dtype=torch.long, device=x.device)
    for s in range(0, x.shape[0], chunk):
        out[s:s + chunk] = torch.cdist(x[s:s + chunk], centers).argmin(1)
    return out


def weighted_kmeans(x: torch.Tensor, weights: torch.Tensor, k: int, iters: int = 25,
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Cluster x [N, D] into k centres minimizing Σ wᵢ‖xᵢ − c(i)‖².

    Seeding is k-means++ on the weights (deterministic for a generator); empty clusters are
    re-seeded at the point with the largest weighted error.

    Returns:
        (centers [k', D], assignment [N]) with k' = min(k, number of distinct points).
    """
    x = x.double()
    w = weights.double().clamp_min(1e-12)
    n = x.shape[0]
    k = min(k, n)
    if k <= 0:
        return x[:0].float(), torch.zeros(n, dtype=torch.long)
    g = generator or torch.Generator().manual_seed(0)
    first = int(torch.multinomial(w / w.sum(), 1, generator=g))
    centers = [x[first]]
    d2 = ((x - x[first]) ** 2).sum(1)
    for _ in range(1, k):
        p = w * d2
        if float(p.sum()) <= 0:
            break
        idx = int(torch.multinomial(p / p.sum(), 1, generator=g))
        centers.append(x[idx])
        d2 = torch.minimum(d2, ((x - x[idx]) ** 2).sum(1))
    c = torch.stack(centers)
    assign = _assign(x, c)
    for _ in range(iters):
        sums = torch.zeros_like(c).index_add_(0, assign, x * w[:, None])
        mass = torch.zeros(c.shape[0], dtype=x.dtype).index_add_(0, assign, w)
        empty = mass <= 0
        c = torch.where(empty[:, None], c, sums / mass.clamp_min(1e-30)[:, None])
        if empty.any():
            err = w * ((x - c[assign]) ** 2).sum(1)
            for j in torch.nonzero(empty).flatten().tolist():
                far = int(err.argmax())
                c[j] = x[far]
                err[far] = 0
        new = _assign(x, c)
        if torch.equal(new, assign):
            break
        assign = new
    return c.float(), assign
