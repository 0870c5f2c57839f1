"""Gaussian initialization: one Gaussian per SLIC superpixel, and positions drawn from a placement map.

Coordinates are the rasterizer's (lgi-gsplat2d): a position (x, y) lies in the unit square, with pixel
(row, col) centred at x = (col + 0.5) / W, y = (row + 0.5) / H. A Gaussian's covariance in those units is
Σ = R(θ) diag(s₁², s₂²) R(θ)ᵀ with R(θ) the rotation by θ radians from +x toward +y.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lgi_preprocess._io import as_rgb_float, load_image, write_text
from lgi_preprocess.errors import PreprocessError

#: Degenerate segments (one pixel, or one pixel thick) get at least this standard deviation along each
#: axis, in pixels: half a pixel, i.e. 0.5 / W along x and 0.5 / H along y in unit-square units.
MIN_SCALE_PIXELS = 0.5


@dataclass
class SlicGaussians:
    """One Gaussian per superpixel, as arrays ready for lgi-train (S Gaussians).

    Attributes:
        positions: [S, 2] float32, segment centroid (x, y) in the unit square.
        scales: [S, 2] float32, standard deviations along the major and minor axis in unit-square units:
            (√λ_major, √λ_minor) of the sample covariance (``np.cov``, as the original) of the segment's
            pixel centres, each at least :data:`MIN_SCALE_PIXELS` pixels along its axis. A single-pixel
            segment gets exactly (0.5 / W, 0.5 / H) with rotation 0.
        rotations: [S] float32, angle (radians, in (-π/2, π/2]) of the major axis from +x toward +y.
        colors: [S, 3] float32, mean RGB in [0, 1].
        segment_ids: [S] int32, the superpixel label.
        pixel_counts: [S] int32, pixels in the superpixel.
        width, height: image size in pixels.
        n_segments_requested: the SLIC ``n_segments`` asked for.
        source_image: the image path, when known.
    """

    positions: np.ndarray
    scales: np.ndarray
    rotations: np.ndarray
    colors: np.ndarray
    segment_ids: np.ndarray
    pixel_counts: np.ndarray
    width: int
    height: int
    n_segments_requested: int | None = None
    source_image: str | None = None

    def __len__(self) -> int:
        return int(self.positions.shape[0])

    def covariances(self) -> np.ndarray:
        """[S, 2, 2] float64 covariance matrices R(θ) diag(s²) R(θ)ᵀ in unit-square units."""
        c, s = np.cos(self.rotations.astype(np.float64)), np.sin(self.rotations.astype(np.float64))
        rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)  # [S, 2, 2]
        d = self.scales.astype(np.float64) ** 2
        return rot @ (d[:, :, None] * np.swapaxes(rot, 1, 2))

    def to_dict(self) -> dict[str, Any]:
        """The original ``slic_init.json`` schema."""
        gaussians = [
            {"position": [float(p[0]), float(p[1])], "scale": [float(s[0]), float(s[1])], "rotation": float(r),
             "color": [float(c[0]), float(c[1]), float(c[2])], "segment_id": int(i), "pixel_count": int(n)}
            for p, s, r, c, i, n in zip(self.positions, self.scales, self.rotations, self.colors,
                                        self.segment_ids, self.pixel_counts)
        ]
        return {"source_image": self.source_image, "image_width": int(self.width),
                "image_height": int(self.height), "n_segments_requested": self.n_segments_requested,
                "n_gaussians": len(gaussians), "gaussians": gaussians}

    def to_json(self, path: str | os.PathLike) -> Path:
        """Write :meth:`to_dict` as JSON (atomically); returns the path."""
        return write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SlicGaussians:
        """Inverse of :meth:`to_dict`; raises :class:`PreprocessError` on a malformed document."""
        try:
            g = data["gaussians"]
            out = cls(
                positions=np.array([e["position"] for e in g], dtype=np.float32).reshape(-1, 2),
                scales=np.array([e["scale"] for e in g], dtype=np.float32).reshape(-1, 2),
                rotations=np.array([e["rotation"] for e in g], dtype=np.float32).reshape(-1),
                colors=np.array([e["color"] for e in g], dtype=np.float32).reshape(-1, 3),
                segment_ids=np.array([e["segment_id"] for e in g], dtype=np.int32).reshape(-1),
                pixel_counts=np.array([e["pixel_count"] for e in g], dtype=np.int32).reshape(-1),
                width=int(data["image_width"]), height=int(data["image_height"]),
                n_segments_requested=data.get("n_segments_requested"), source_image=data.get("source_image"))
        except (KeyError, TypeError, ValueError) as exc:
            raise PreprocessError(f"not a slic_init document: {type(exc).__name__}: {exc}") from None
        if data.get("n_gaussians", len(out)) != len(out):
            raise PreprocessError(f"slic_init says n_gaussians={data['n_gaussians']} but lists {len(out)}")
        return out

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> SlicGaussians:
        """Read a ``slic_init.json`` written by :meth:`to_json` (or the original tool)."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise PreprocessError(f"{path}: cannot read slic_init JSON ({exc})") from None
        return cls.from_dict(data)


def generate_slic_gaussians(image: Any, n_segments: int = 500, compactness: float = 10.0, sigma: float = 1.0,
                            *, segments: np.ndarray | None = None) -> SlicGaussians:
    """One Gaussian per SLIC superpixel: centroid, mean colour, covariance → scales and rotation.

    Args:
        image: a path, a PIL image, or an RGB array (float in [0, 1] or uint8) [H, W, 3].
        n_segments, compactness, sigma: SLIC parameters (see :func:`lgi_preprocess.slic_segments`).
        segments: [H, W] integer labels to use instead of running SLIC (e.g. the pipeline's own).

    Returns:
        :class:`SlicGaussians`, one entry per non-empty label, in increasing label order.
    """
    from lgi_preprocess.maps import _check_segments, slic_segments

    source = None
    if isinstance(image, (str, os.PathLike)):
        source = str(image)
        rgb = load_image(image)
    else:
        rgb = as_rgb_float(image)
    H, W = rgb.shape[:2]
    if segments is None:
        seg = slic_segments(rgb, n_segments, compactness, sigma)
    else:
        seg = _check_segments(segments)
        if seg.shape != (H, W):
            raise PreprocessError(f"segments {seg.shape} do not match the image {(H, W)}")
    lab = seg.ravel().astype(np.int64)
    n_all = np.bincount(lab)
    ids = np.flatnonzero(n_all)
    n = n_all[ids].astype(np.float64)
    rows, cols = np.divmod(np.arange(H * W, dtype=np.int64), W)
    x, y = (cols + 0.5) / W, (rows + 0.5) / H

    def seg_sum(values: np.ndarray) -> np.ndarray:
        return np.bincount(lab, weights=values, minlength=len(n_all))[ids]

    mx, my = seg_sum(x) / n, seg_sum(y) / n
    dense = np.zeros(len(n_all), dtype=np.int64)
    dense[ids] = np.arange(len(ids))
    dx, dy = x - mx[dense[lab]], y - my[dense[lab]]
    ddof = np.maximum(n - 1.0, 1.0)  # sample covariance (np.cov); a single pixel has zero covariance
    a, b, c = seg_sum(dx * dx) / ddof, seg_sum(dx * dy) / ddof, seg_sum(dy * dy) / ddof
    half_trace, root = (a + c) / 2.0, np.hypot((a - c) / 2.0, b)
    lam_major, lam_minor = half_trace + root, np.maximum(half_trace - root, 0.0)
    theta = 0.5 * np.arctan2(2.0 * b, a - c)  # major eigenvector (cos θ, sin θ)
    cos, sin = np.cos(theta), np.sin(theta)
    fx, fy = (MIN_SCALE_PIXELS / W) ** 2, (MIN_SCALE_PIXELS / H) ** 2  # half a pixel, per unit-square axis
    floor_major = np.sqrt(cos**2 * fx + sin**2 * fy)
    floor_minor = np.sqrt(sin**2 * fx + cos**2 * fy)
    scales = np.stack([np.maximum(np.sqrt(lam_major), floor_major), np.maximum(np.sqrt(lam_minor), floor_minor)],
                      axis=1)
    colors = np.stack([seg_sum(rgb[:, :, k].ravel().astype(np.float64)) / n for k in range(3)], axis=1)
    return SlicGaussians(
        positions=np.stack([mx, my], axis=1).astype(np.float32), scales=scales.astype(np.float32),
        rotations=theta.astype(np.float32), colors=np.clip(colors, 0.0, 1.0).astype(np.float32),
        segment_ids=ids.astype(np.int32), pixel_counts=n.astype(np.int32), width=W, height=H,
        n_segments_requested=int(n_segments) if segments is None else None, source_image=source)


def sample_positions(placement: np.ndarray, n: int, seed: int | None = None) -> np.ndarray:
    """Draw ``n`` positions with probability proportional to ``placement``.

    A pixel is drawn ∝ its value, then the position is jittered uniformly inside that pixel, so
    positions cover the unit square continuously. Deterministic for a given integer ``seed``.

    Args:
        placement: [H, W] non-negative weights, not all zero (need not sum to 1).
        n: number of positions (≥ 0).
        seed: seed of ``numpy.random.default_rng``.

    Returns:
        [n, 2] float32 (x, y) in [0, 1)² unit-square coordinates (pixel (row, col) spans
        [col/W, (col+1)/W) × [row/H, (row+1)/H)).
    """
    p = np.asarray(placement, dtype=np.float64)
    if p.ndim != 2 or p.size == 0:
        raise PreprocessError(f"placement must be a non-empty [H, W] array, got shape {p.shape}")
    if not np.all(np.isfinite(p)) or p.min() < 0:
        raise PreprocessError("placement must be finite and >= 0")
    if int(n) != n or n < 0:
        raise PreprocessError(f"n must be a non-negative integer, got {n}")
    cdf = np.cumsum(p.ravel())
    total = float(cdf[-1])
    if total <= 0:
        raise PreprocessError("placement is zero everywhere; nothing to sample from")
    rng = np.random.default_rng(seed)
    idx = np.searchsorted(cdf, rng.random(int(n)) * total, side="right")
    idx = np.minimum(idx, int(np.flatnonzero(p.ravel())[-1]))  # guard u·total rounding up to total
    H, W = p.shape
    rows, cols = np.divmod(idx, W)
    jitter = rng.random((int(n), 2))
    xy = np.stack([(cols + jitter[:, 0]) / W, (rows + jitter[:, 1]) / H], axis=1).astype(np.float32)
    # Rounding to float32 can carry a point onto the next pixel's edge; step it back inside its pixel.
    for axis, index, size in ((0, cols, W), (1, rows, H)):
        over = np.floor(xy[:, axis].astype(np.float64) * size) > index
        xy[over, axis] = np.nextafter(xy[over, axis], np.float32(0))
    return xy
