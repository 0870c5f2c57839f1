"""Fitting a large image in overlapping tiles (HYPIR's tiled processing, applied to the fit).

Above ``EncodeOptions.tile_above`` pixels the encoder's fit runs per tile instead of on the whole
image: the image is cut into a grid of cores of about ``tile`` pixels a side, each core is fitted with
``overlap`` pixels of context on every side, independently (in worker processes when there are cores
to spare), and each tile keeps the Gaussians whose centre lies in its core. The union is one ordinary
Gaussian set of the whole image, which the rest of the encoder (sensitivity, rate search, pruning,
float re-fit, quantization-aware fine-tuning) treats as it treats an untiled fit: those stages run on
the whole image and so also settle the seams. The file format does not change.

What tiling bounds is the fit's memory (a tile's, not the image's) and what it spreads is its work
(over processes, or GPUs); it does not make the fit cheaper per pixel.

Counts: the untiled fit draws its initial positions ∝ the squared Sobel gradient (with a uniform
share); each tile gets the share of the Gaussian count that this density puts in its core, so the
tiled set is distributed like the untiled one, and fits its padded area with as many more as the
density puts in the margin.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from lgi_train.config import FitConfig
from lgi_train.init import sobel_magnitude_sq


@dataclass(frozen=True)
class Tile:
    """Rows [y0, y1) and columns [x0, x1) of a core, and of the padded box fitted around it."""

    y0: int
    y1: int
    x0: int
    x1: int
    py0: int
    py1: int
    px0: int
    px1: int


def tile_grid(height: int, width: int, tile: int, overlap: int) -> list[Tile]:
    """Cores of near-equal size, at most ``tile`` pixels a side, covering the image exactly once."""
    if tile < 16:
        raise ValueError(f"tiles must be at least 16 pixels a side, got {tile}")
    if overlap < 0:
        raise ValueError(f"the overlap must be >= 0, got {overlap}")
    rows, cols = math.ceil(height / tile), math.ceil(width / tile)
    ys = [round(i * height / rows) for i in range(rows + 1)]
    xs = [round(j * width / cols) for j in range(cols + 1)]
    return [Tile(ys[i], ys[i + 1], xs[j], xs[j + 1], max(0, ys[i] - overlap), min(height, ys[i + 1] + overlap),
                 max(0, xs[j] - overlap), min(width, xs[j + 1] + overlap))
            for i in range(rows) for j in range(cols)]


def tile_counts(target: torch.Tensor, tiles: list[Tile], n: int, uniform_fraction: float) -> list[tuple[int, int]]:
    """Per tile, (Gaussians its core should own, Gaussians to fit on its padded box): shares of ``n``
    by the untiled fit's initial density, rounded so that the cores' counts sum to ``n``."""
    _, h, w = target.shape
    density = sobel_magnitude_sq(target.detach().cpu().float()).double().clamp_min(0)
    total = float(density.sum())
    u = uniform_fraction if total > 0 else 1.0

    def mass(y0, y1, x0, x1) -> float:
        d = float(density[y0:y1, x0:x1].sum()) / total if total > 0 else 0.0
        return (1 - u) * d + u * (y1 - y0) * (x1 - x0) / (h * w)

    core = np.array([mass(t.y0, t.y1, t.x0, t.x1) for t in tiles])
    padded = np.array([mass(t.py0, t.py1, t.px0, t.px1) for t in tiles])
    share = n * core / core.sum()
    owned = np.floor(share).astype(int)
    owned[np.argsort(-(share - owned), kind="stable")[: n - owned.sum()]] += 1  # largest remainders
    return [(int(o), max(1, int(round(o * p / c))) if o > 0 else 0)
            for o, p, c in zip(owned, padded, np.maximum(core, 1e-300))]


def _to_global(tile: Tile, height: int, width: int, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A tile's Gaussians (unit square of the padded box) in the whole image's unit square. A pixel
    covariance D Σ D (D = diag(width, height)) stays the same pixel covariance, so the unit-square
    covariance is rescaled per axis and its axes and angle found again."""
    th, tw = tile.py1 - tile.py0, tile.px1 - tile.px0
    xy = params["xy"].double()
    gxy = torch.stack([(xy[:, 0] * tw + tile.px0) / width, (xy[:, 1] * th + tile.py0) / height], 1)
    s = params["scales"].double()
    c, sn = torch.cos(params["rotations"].double()), torch.sin(params["rotations"].double())
    v1, v2 = s[:, 0] ** 2, s[:, 1] ** 2
    ax, ay = tw / width, th / height
    sxx = ax * ax * (c * c * v1 + sn * sn * v2)
    syy = ay * ay * (sn * sn * v1 + c * c * v2)
    sxy = ax * ay * c * sn * (v1 - v2)
    half = 0.5 * (sxx - syy)
    root = torch.sqrt(half * half + sxy * sxy)
    l1 = (0.5 * (sxx + syy) + root).clamp_min(1e-30)
    l2 = (0.5 * (sxx + syy) - root).clamp_min(1e-30)
    theta = 0.5 * torch.atan2(2 * sxy, sxx - syy)
    return {"xy": gxy.float(), "scales": torch.stack([l1.sqrt(), l2.sqrt()], 1).float(),
            "rotations": theta.float(), "colors": params["colors"].float()}


def _fit_one(job: tuple) -> dict[str, torch.Tensor]:
    """Fit one padded tile (a worker process's whole job, or one step of the sequential loop)."""
    image, cfg, n, threads, on_step = job
    if threads:
        torch.set_num_threads(threads)
    from lgi_train.fit import Fitter

    model = Fitter(image, cfg.replace(num_gaussians=n), on_step=on_step).run().model
    model.quant = None
    with torch.no_grad():
        p = model.params()
        return {"xy": p["means"].detach().cpu(), "scales": p["scales"].detach().cpu(),
                "rotations": p["rotations"].detach().cpu(), "colors": p["colors"].detach().cpu()}


def default_workers(threads: int | None = None) -> int:
    """Worker processes for the tile fits: one per spare core group of ``threads`` (the torch threads
    of the parent). On 2 cores with 2 threads: 1, the tiles run one after the other in-process."""
    from lgi_gsplat2d.native import usable_cpus

    return max(1, usable_cpus() // max(1, threads or torch.get_num_threads()))


def fit_in_tiles(target: torch.Tensor, cfg: FitConfig, n: int, tile: int, overlap: int, workers: int = 1,
                 on_progress: Callable[[float], None] | None = None):
    """Fit ``target`` [C, H, W] with about ``n`` Gaussians tile by tile; returns a GaussianModel of the
    whole image (the cores' owned Gaussians) and the tile grid."""
    from lgi_train.model import GaussianModel

    _, h, w = target.shape
    tiles = tile_grid(h, w, tile, overlap)
    counts = tile_counts(target, tiles, n, cfg.init_uniform_fraction)
    progress = on_progress or (lambda frac: None)
    jobs = []
    for i, (t, (_, n_fit)) in enumerate(zip(tiles, counts)):
        if n_fit == 0:
            continue
        crop = target[:, t.py0:t.py1, t.px0:t.px1].contiguous()
        tile_cfg = cfg.replace(seed=cfg.seed + i, max_seconds=None if cfg.max_seconds is None
                               else cfg.max_seconds * n_fit / max(1, n))
        jobs.append((i, t, crop, tile_cfg, n_fit))
    results: dict[int, dict[str, torch.Tensor]] = {}
    if workers <= 1 or len(jobs) <= 1:
        for k, (i, _, crop, tile_cfg, n_fit) in enumerate(jobs):
            def step(s, k=k, steps=tile_cfg.steps):
                progress((k + s.step / max(1, steps)) / len(jobs))
            results[i] = _fit_one((crop, tile_cfg, n_fit, 0, step))
    else:
        import concurrent.futures as cf
        import multiprocessing as mp

        threads = max(1, torch.get_num_threads() // workers)
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
            futures = {pool.submit(_fit_one, (crop.cpu(), tile_cfg, n_fit, threads, None)): i
                       for i, _, crop, tile_cfg, n_fit in jobs}
            for done, fut in enumerate(cf.as_completed(futures)):
                results[futures[fut]] = fut.result()
                progress((done + 1) / len(jobs))
    parts = []
    for i, t, _, _, _ in jobs:
        g = _to_global(t, h, w, results[i])
        cx, cy = g["xy"][:, 0].double() * w, g["xy"][:, 1].double() * h
        own = (cx >= t.x0) & (cx < t.x1) & (cy >= t.y0) & (cy < t.y1)
        parts.append({k: v[own] for k, v in g.items()})
    merged = {k: torch.cat([p[k] for p in parts]) for k in ("xy", "scales", "rotations", "colors")}
    model = GaussianModel(merged["xy"], merged["scales"], merged["rotations"], merged["colors"],
                          render_mode=cfg.render_mode, topk=cfg.topk, backend=cfg.backend).to(cfg.device)
    progress(1.0)
    return model, tiles
