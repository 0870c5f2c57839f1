"""Where the Gaussians start: content-adaptive initialization.

Modes (``FitConfig.init``):

* ``gradient`` — positions drawn ∝ (Sobel magnitude)², mixed with ``init_uniform_fraction`` (0.3)
  uniform draws: Image-GS's default.
* ``placement`` — drawn from lgi-preprocess's placement map (entropy, gradient, texture, saliency,
  distance), with the same uniform share.
* ``slic`` — one Gaussian per SLIC superpixel (centroid, covariance, mean colour, from
  lgi-preprocess), topped up to N with ``gradient`` draws (the largest segments win if there are
  more segments than N).
* ``saliency`` — drawn ∝ a saliency map: the spectral residual (lgi-preprocess) by default, or a
  user-supplied TorchScript saliency model (``saliency_weights``: a file mapping [1, 3, H, W] in
  [0, 1] to [1, 1, H, W]), since EML-Net's pretrained weights cannot ship with LGI.
* ``random`` — uniform positions.

Every drawn position is jittered uniformly inside its pixel. Colours are the image at the position.
The initial scale rule: each Gaussian starts isotropic in pixels with
σ = ``init_scale`` × RMS distance to its 3 nearest neighbours (clamped to [0.5, max(H, W) / 8] px),
so Gaussians tile their neighbourhood wherever the sampling density puts them.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from lgi_train.config import FitConfig


class InitError(ValueError):
    """Initialization cannot proceed (e.g. a missing saliency model); the message says why."""


def sobel_magnitude_sq(image: torch.Tensor) -> torch.Tensor:
    """[C, H, W] → [H, W] squared Sobel gradient magnitude of the luminance."""
    gray = image.mean(0, keepdim=True)[None]
    kx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=image.dtype, device=image.device) / 8
    k = torch.stack([kx, kx.t()])[:, None]
    g = F.conv2d(F.pad(gray, (1, 1, 1, 1), mode="replicate"), k)
    return (g ** 2).sum(1)[0]


#: torch.multinomial takes at most 2**24 categories (16.78 MP); larger densities use inverse-CDF sampling.
MULTINOMIAL_MAX_CATEGORIES = 1 << 24


def draw_indices(p: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """[k] indices drawn with replacement ∝ p [M] (float64, ≥ 0, positive sum), any M.

    Up to 2**24 categories this is ``torch.multinomial`` (so fits of such images keep their exact
    draws); above, inverse-CDF sampling: uniform draws from the same generator located by
    ``torch.searchsorted`` in the float64 cumulative sum. Both are deterministic for a seed.
    """
    if p.numel() <= MULTINOMIAL_MAX_CATEGORIES:
        return torch.multinomial(p / p.sum(), k, replacement=True, generator=generator)
    cdf = torch.cumsum(p, 0)
    total = cdf[-1]
    u = torch.rand(k, generator=generator, dtype=torch.float64, device=p.device) * total
    # u < total strictly, so the first cdf entry above u exists and belongs to a p > 0.
    u = torch.minimum(u, torch.nextafter(total, torch.zeros_like(total)))
    return torch.searchsorted(cdf, u, right=True)


def sample_from_density(density: torch.Tensor, n: int, uniform_fraction: float,
                        generator: torch.Generator) -> torch.Tensor:
    """[n, 2] unit-square positions: ``n·(1 − uniform_fraction)`` drawn ∝ density [H, W], the rest
    uniform; each jittered inside its pixel."""
    h, w = density.shape
    n_uniform = int(round(n * uniform_fraction))
    p = density.flatten().double().clamp_min(0)
    if float(p.sum()) <= 0:
        n_uniform = n
    idx = []
    if n - n_uniform > 0:
        idx.append(draw_indices(p, n - n_uniform, generator))
    if n_uniform > 0:
        idx.append(torch.randint(0, h * w, (n_uniform,), generator=generator))
    flat = torch.cat(idx) if idx else torch.zeros(0, dtype=torch.long)
    rows, cols = flat // w, flat % w
    jitter = torch.rand((flat.numel(), 2), generator=generator, dtype=torch.float64)
    xy = torch.stack([(cols + jitter[:, 0]) / w, (rows + jitter[:, 1]) / h], dim=1)
    return xy.float()


def colors_at(image: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """[N, C] bilinear samples of image [C, H, W] at unit-square positions xy [N, 2]."""
    grid = (xy * 2 - 1).view(1, -1, 1, 2).to(image)
    out = F.grid_sample(image[None], grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out[0, :, :, 0].t().contiguous()


def scales_from_density(xy: torch.Tensor, height: int, width: int, factor: float) -> torch.Tensor:
    """[N, 2] unit-square scales: isotropic in pixels, σ = factor × RMS distance to 3 neighbours."""
    from scipy.spatial import cKDTree

    n = xy.shape[0]
    px = xy.detach().double().cpu().numpy() * np.array([width, height])
    if n >= 2:
        k = min(4, n)
        dist, _ = cKDTree(px).query(px, k=k)
        rms = np.sqrt((dist[:, 1:] ** 2).mean(axis=1))
    else:
        rms = np.full(n, np.sqrt(height * width / max(n, 1)))
    sigma = np.clip(factor * rms, 0.5, max(height, width) / 8)
    scales = np.stack([sigma / width, sigma / height], axis=1)
    return torch.from_numpy(scales).float()


def _saliency_density(image: torch.Tensor, cfg: FitConfig) -> torch.Tensor:
    if cfg.saliency_weights:
        from pathlib import Path

        path = Path(cfg.saliency_weights)
        if not path.is_file():
            raise InitError(f"saliency model not found: {path} (give a TorchScript file, or omit "
                            "saliency_weights to use the spectral-residual map)")
        try:
            net = torch.jit.load(str(path), map_location=image.device).eval()
        except Exception as exc:  # noqa: BLE001 - any load failure is the user's file
            raise InitError(f"cannot load saliency model {path}: {exc}") from None
        with torch.no_grad():
            sal = net(image[None].float())
        if sal.dim() != 4 or sal.shape[:2] != (1, 1):
            raise InitError(f"saliency model must return [1, 1, H, W], got {list(sal.shape)}")
        sal = F.interpolate(sal, size=image.shape[1:], mode="bilinear", align_corners=False)[0, 0]
        return sal.clamp_min(0)
    from lgi_preprocess import saliency_map

    rgb = image.permute(1, 2, 0).cpu().numpy()
    return torch.from_numpy(saliency_map(_as_rgb(rgb))).to(image.device)


def _as_rgb(rgb: np.ndarray) -> np.ndarray:
    rgb = np.clip(rgb, 0, 1).astype(np.float32)
    return np.repeat(rgb, 3, axis=2) if rgb.shape[2] == 1 else rgb[:, :, :3]


def _placement_density(image: torch.Tensor) -> torch.Tensor:
    from lgi_preprocess import ImagePreprocessor, PreprocessConfig

    rgb = _as_rgb(image.permute(1, 2, 0).cpu().numpy())
    result = ImagePreprocessor(PreprocessConfig(maps=("placement",))).preprocess(rgb)
    return torch.from_numpy(np.asarray(result.maps["placement"], dtype=np.float64))


def initialize(image: torch.Tensor, n: int, cfg: FitConfig, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """N initial Gaussians for image [C, H, W] in [0, 1].

    Returns:
        dict with "xy" [N, 2], "scales" [N, 2], "rotations" [N], "colors" [N, C] (on CPU).
    """
    image = image.detach().cpu().float()
    _, h, w = image.shape
    mode = cfg.init
    fixed: dict[str, torch.Tensor] | None = None
    if mode == "slic":
        fixed = _slic_gaussians(image, n, cfg)
        n_rest = n - fixed["xy"].shape[0]
        mode = "gradient"
    else:
        n_rest = n
    if mode == "gradient":
        xy = sample_from_density(sobel_magnitude_sq(image), n_rest, cfg.init_uniform_fraction, generator)
    elif mode == "placement":
        xy = sample_from_density(_placement_density(image), n_rest, cfg.init_uniform_fraction, generator)
    elif mode == "saliency":
        xy = sample_from_density(_saliency_density(image, cfg), n_rest, cfg.init_uniform_fraction, generator)
    elif mode == "random":
        xy = sample_from_density(torch.ones(h, w), n_rest, 1.0, generator)
    else:
        raise InitError(f"unknown init mode {cfg.init!r}")
    if fixed is not None:
        all_xy = torch.cat([fixed["xy"], xy])
        scales = scales_from_density(all_xy, h, w, cfg.init_scale)[fixed["xy"].shape[0]:]
        rot = torch.rand(xy.shape[0], generator=generator) * torch.pi
        return {"xy": all_xy, "scales": torch.cat([fixed["scales"], scales]),
                "rotations": torch.cat([fixed["rotations"], rot]),
                "colors": torch.cat([fixed["colors"], colors_at(image, xy)])}
    return {"xy": xy, "scales": scales_from_density(xy, h, w, cfg.init_scale),
            "rotations": torch.rand(n, generator=generator) * torch.pi, "colors": colors_at(image, xy)}


def _slic_gaussians(image: torch.Tensor, n: int, cfg: FitConfig) -> dict[str, torch.Tensor]:
    from lgi_preprocess import generate_slic_gaussians

    segments = cfg.slic_segments or max(1, n // 2)
    rgb = _as_rgb(image.permute(1, 2, 0).numpy())
    sg = generate_slic_gaussians(rgb, n_segments=min(segments, n))
    order = np.argsort(-np.asarray(sg.pixel_counts), kind="stable")[:n]
    colors = torch.from_numpy(np.asarray(sg.colors, dtype=np.float32)[order])
    if image.shape[0] == 1:
        colors = colors.mean(1, keepdim=True)
    # A superpixel's covariance describes its whole extent; a Gaussian that blends with neighbours
    # should cover about its core, so its σ is scaled by init_scale as for sampled starts.
    scales = torch.from_numpy(np.asarray(sg.scales, dtype=np.float32)[order]) * cfg.init_scale
    return {"xy": torch.from_numpy(np.asarray(sg.positions, dtype=np.float32)[order]),
            "scales": scales.clamp_min(1e-6),
            "rotations": torch.from_numpy(np.asarray(sg.rotations, dtype=np.float32)[order]),
            "colors": colors}
