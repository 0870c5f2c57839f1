"""Content maps: where an image has detail, each as float32 [H, W] in [0, 1].

Every function takes an RGB image as returned by :func:`lgi_preprocess.load_image` (float32 ``[H, W, 3]``
in ``[0, 1]``) or a uint8 / uint16 array (``[H, W]`` grayscale works too). Grayscale is the Rec. 709 luma
``0.2125 R + 0.7154 G + 0.0721 B`` used by ``skimage.color.rgb2gray`` (and so by the original tools).
Maps are normalized by their maximum; a map whose maximum is 0 (a flat image) is all zeros.

Tile-based maps (entropy, texture) are evaluated per tile and brought back to full resolution by bilinear
interpolation between tile centres (constant beyond the outermost centres), so they have no block edges
that would bias sampling.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from lgi_preprocess._io import as_rgb_float
from lgi_preprocess.errors import PreprocessError

#: skimage.color.rgb2gray weights (Rec. 709 luma).
LUMA = np.array([0.2125, 0.7154, 0.0721], dtype=np.float32)
#: Every map the pipeline can produce, in computation order.
MAP_NAMES: tuple[str, ...] = ("entropy", "gradient", "texture", "saliency", "segments", "distance", "skeleton",
                              "placement")
#: Maps that may carry a placement weight.
WEIGHTABLE_MAPS: tuple[str, ...] = ("entropy", "gradient", "texture", "saliency", "distance", "skeleton")
#: The original tool's placement weights.
DEFAULT_WEIGHTS: dict[str, float] = {"entropy": 0.30, "gradient": 0.25, "texture": 0.20, "saliency": 0.15,
                                     "distance": 0.10}
#: Spectral-residual working size (Hou & Zhang use 64 px) and the smoothing OpenCV contrib applies.
SALIENCY_SIZE = 64
_SALIENCY_BLUR_KSIZE = (5, 5)
_SALIENCY_BLUR_SIGMA = 8.0
_SALIENCY_AMPLITUDE_FLOOR = 1e-3  # relative to the mean spectral amplitude


def to_gray(image: Any) -> np.ndarray:
    """RGB (or grayscale) image → float32 [H, W] luma in [0, 1]."""
    rgb = as_rgb_float(image)
    return np.clip(rgb @ LUMA, 0.0, 1.0).astype(np.float32)


def normalize_max(values: np.ndarray) -> np.ndarray:
    """``values / values.max()`` as float32, or zeros when the maximum is not positive."""
    values = np.asarray(values, dtype=np.float64)
    top = float(values.max()) if values.size else 0.0
    if not np.isfinite(top) or top <= 0.0:
        return np.zeros(values.shape, dtype=np.float32)
    return np.clip(values / top, 0.0, 1.0).astype(np.float32)


def _interp_weights(centres: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    frac = np.interp(np.arange(n, dtype=np.float64), centres, np.arange(len(centres), dtype=np.float64))
    i0 = np.minimum(np.floor(frac).astype(np.int64), len(centres) - 1)
    i1 = np.minimum(i0 + 1, len(centres) - 1)
    return i0, i1, (frac - i0)


def upsample_tiles(values: np.ndarray, centres_y: np.ndarray, centres_x: np.ndarray, height: int, width: int
                   ) -> np.ndarray:
    """Bilinear interpolation of per-tile values ``[ny, nx]`` known at pixel positions ``centres_y`` [ny] ×
    ``centres_x`` [nx] (increasing) onto the full ``[height, width]`` grid; constant beyond the outer centres.
    """
    values = np.asarray(values, dtype=np.float64)
    y0, y1, wy = _interp_weights(np.asarray(centres_y, np.float64), height)
    x0, x1, wx = _interp_weights(np.asarray(centres_x, np.float64), width)
    rows = values[y0] * (1.0 - wy)[:, None] + values[y1] * wy[:, None]  # [height, nx]
    return rows[:, x0] * (1.0 - wx) + rows[:, x1] * wx


def entropy_map(image: Any, tile_size: int = 16) -> np.ndarray:
    """Shannon entropy (bits) of the 256-bin grayscale histogram of each ``tile_size`` tile.

    Tiles tile the image without overlap from the top-left corner (the last row/column of tiles may be
    smaller), as the original; values are interpolated between tile centres and normalized by the maximum.

    Args:
        image: RGB [H, W, 3] float in [0, 1] or uint8 (or grayscale [H, W]).
        tile_size: tile side in pixels (≥ 1).

    Returns:
        [H, W] float32 in [0, 1]; all zeros for a flat image.
    """
    if int(tile_size) < 1:
        raise PreprocessError(f"entropy tile_size must be >= 1, got {tile_size}")
    ts = int(tile_size)
    gray = to_gray(image)
    H, W = gray.shape
    # np.histogram(tile, bins=256, range=(0, 1)) binning: bin floor(256 v), with v = 1 in the last bin.
    q = np.minimum((gray.astype(np.float64) * 256.0).astype(np.int64), 255)
    ny, nx = -(-H // ts), -(-W // ts)
    tile_id = (np.arange(H) // ts)[:, None] * nx + (np.arange(W) // ts)[None, :]
    counts = np.bincount((tile_id * 256 + q).ravel(), minlength=ny * nx * 256).reshape(ny * nx, 256)
    p = counts / counts.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(counts > 0, p * np.log2(p), 0.0).sum(axis=1)
    starts_y, starts_x = np.arange(0, H, ts), np.arange(0, W, ts)
    cy = (starts_y + np.minimum(starts_y + ts, H) - 1) / 2.0
    cx = (starts_x + np.minimum(starts_x + ts, W) - 1) / 2.0
    return normalize_max(upsample_tiles(ent.reshape(ny, nx), cy, cx, H, W))


def _reflect101(n: int) -> np.ndarray:
    """Indices of a 1-pixel OpenCV BORDER_REFLECT_101 padding of a length-n axis."""
    idx = np.arange(-1, n + 1)
    if n == 1:
        return np.zeros(n + 2, dtype=np.int64)
    idx[0], idx[-1] = 1, n - 2
    return idx


def _sobel_torch(gray: np.ndarray) -> np.ndarray:
    try:
        import torch
        import torch.nn.functional as F
    except ImportError as exc:
        raise PreprocessError("gradient_map(use_gpu=True) needs PyTorch, which is not installed: install "
                              "torch, or compute it with OpenCV (use_gpu=False)") from exc
    if torch.cuda.is_available():
        device = torch.device("cuda")
    else:
        warnings.warn("gradient_map(use_gpu=True): no CUDA device, running the torch Sobel on the CPU",
                      RuntimeWarning, stacklevel=3)
        device = torch.device("cpu")
    H, W = gray.shape
    x = torch.from_numpy(np.ascontiguousarray(gray)).to(device)
    iy = torch.from_numpy(_reflect101(H)).to(device)
    ix = torch.from_numpy(_reflect101(W)).to(device)
    x = x.index_select(0, iy).index_select(1, ix)[None, None]  # [1, 1, H+2, W+2], padded like OpenCV
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=device)
    g = F.conv2d(x, torch.stack([kx, kx.T])[:, None])  # cross-correlation, as cv2.Sobel: [1, 2, H, W]
    return torch.sqrt(g[0, 0] ** 2 + g[0, 1] ** 2).cpu().numpy()


def gradient_map(image: Any, use_gpu: bool = False) -> np.ndarray:
    """Sobel (3×3) gradient magnitude of the grayscale image, normalized by its maximum.

    Computed in float32 on the [0, 1] luma (the original rounded to uint8 first). Borders are reflected
    (OpenCV ``BORDER_REFLECT_101``), so a flat image has zero gradient everywhere.

    Args:
        image: RGB [H, W, 3] float in [0, 1] or uint8.
        use_gpu: compute with PyTorch (imported only then) on CUDA; without a CUDA device the same torch
            code runs on the CPU with a warning. Raises :class:`PreprocessError` if torch is not installed.

    Returns:
        [H, W] float32 in [0, 1].
    """
    gray = to_gray(image)
    if use_gpu:
        mag = _sobel_torch(gray)
    else:
        import cv2

        gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT_101)
        gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT_101)
        mag = cv2.magnitude(gx, gy)
    return normalize_max(mag)


def texture_map(image: Any, tile_size: int = 32, step: int | None = None, method: str = "fast") -> np.ndarray:
    """Haralick texture score contrast / (energy + 0.01) on overlapping tiles (default 32×32, step 16).

    Contrast and energy (angular second moment) of mahotas' four symmetric co-occurrence matrices of the
    uint8 grayscale tile, averaged over the four offsets, as ``mahotas.features.haralick`` computes them,
    but in closed form for all tiles at once (see ``lgi_preprocess._texture``; equal to the per-tile
    mahotas call to rounding). High contrast and low energy mean texture. Values are interpolated between
    tile centres and normalized by the maximum.

    Args:
        image: RGB [H, W, 3] float in [0, 1] or uint8.
        tile_size: tile side in pixels (≥ 2).
        step: distance between tiles; ``None`` means ``tile_size // 2`` (50 % overlap).
        method: ``"fast"`` (closed form) or ``"mahotas"`` (one ``mahotas.features.haralick`` call per
            tile, about 40× slower; the reference the fast path is tested against).

    Returns:
        [H, W] float32 in [0, 1]; zeros for a flat image.
    """
    from lgi_preprocess._texture import tile_scores, tile_scores_mahotas

    if method not in ("fast", "mahotas"):
        raise PreprocessError(f"texture method must be 'fast' or 'mahotas', got {method!r}")

    tile_size = int(tile_size)
    step = max(1, tile_size // 2) if step is None else int(step)
    if tile_size < 2 or step < 1:
        raise PreprocessError(f"texture tile_size must be >= 2 and step >= 1, got {tile_size}, {step}")
    gray = to_gray(image)
    H, W = gray.shape
    g8 = np.round(gray * 255.0).astype(np.uint8)
    scores, ys, xs = (tile_scores if method == "fast" else tile_scores_mahotas)(g8, tile_size, step)
    cy = ys + (min(tile_size, H) - 1) / 2.0
    cx = xs + (min(tile_size, W) - 1) / 2.0
    return normalize_max(upsample_tiles(scores, cy, cx, H, W))


def saliency_map(image: Any) -> np.ndarray:
    """Spectral-residual saliency (Hou & Zhang, "Saliency Detection: A Spectral Residual Approach", CVPR 2007).

    The steps and constants of OpenCV contrib's ``StaticSaliencySpectralResidual`` (which the original
    called, and which opencv-python-headless lacks): grayscale resized to 64×64, log amplitude spectrum
    minus its 3×3 mean, back-transformed with the original phase, magnitude blurred (5×5 Gaussian, σ 8)
    and squared, resized to the image with bilinear interpolation, normalized by the maximum. Amplitudes
    are floored at 1e-3 of their mean before the log, so exact spectral zeros of synthetic images do not
    turn into a grid of artefacts (the floor changes nothing on the 24 Kodak photographs).

    The input is converted once by :func:`as_rgb_float` (uint8 is divided by 255, float must be in [0, 1]):
    the original multiplied an already-uint8 image by 255 again, which wraps around in uint8.

    Returns:
        [H, W] float32 in [0, 1]; zeros for a flat image (nothing stands out).
    """
    import cv2

    gray = to_gray(image)
    H, W = gray.shape
    if float(gray.max() - gray.min()) == 0.0:
        return np.zeros((H, W), dtype=np.float32)
    small = cv2.resize(gray, (SALIENCY_SIZE, SALIENCY_SIZE), interpolation=cv2.INTER_AREA).astype(np.float64)
    spectrum = np.fft.fft2(small)
    amplitude = np.abs(spectrum)
    # Exact spectral zeros (synthetic images, flat areas) would make log → -inf and let their neighbours
    # dominate the residual; photographs never come near this floor.
    log_amp = np.log(np.maximum(amplitude, _SALIENCY_AMPLITUDE_FLOOR * amplitude.mean()))
    residual = log_amp - cv2.blur(log_amp, (3, 3), borderType=cv2.BORDER_REFLECT_101)
    back = np.abs(np.fft.ifft2(np.exp(residual + 1j * np.angle(spectrum))))
    back = cv2.GaussianBlur(back, _SALIENCY_BLUR_KSIZE, _SALIENCY_BLUR_SIGMA, borderType=cv2.BORDER_REFLECT_101)
    sal = normalize_max(back * back)
    return normalize_max(cv2.resize(sal, (W, H), interpolation=cv2.INTER_LINEAR))


def slic_segments(image: Any, n_segments: int = 500, compactness: float = 10.0, sigma: float = 1.0
                  ) -> np.ndarray:
    """SLIC superpixels (``skimage.segmentation.slic`` in CIELAB, connectivity enforced).

    Returns:
        [H, W] int32 labels, consecutive from 0 (not normalized).
    """
    from skimage.segmentation import slic

    if int(n_segments) < 1:
        raise PreprocessError(f"n_segments must be >= 1, got {n_segments}")
    if not compactness > 0 or not sigma >= 0:
        raise PreprocessError(f"compactness must be > 0 and sigma >= 0, got {compactness}, {sigma}")
    rgb = as_rgb_float(image)
    labels = slic(rgb, n_segments=int(n_segments), compactness=float(compactness), sigma=float(sigma),
                  start_label=0, channel_axis=-1)
    present = np.bincount(labels.ravel()) > 0
    relabel = (np.cumsum(present) - 1).astype(np.int32)
    return relabel[labels]


def _check_segments(segments: np.ndarray) -> np.ndarray:
    seg = np.asarray(segments)
    if seg.ndim != 2 or not np.issubdtype(seg.dtype, np.integer) or seg.size == 0:
        raise PreprocessError(f"segments must be a non-empty [H, W] integer label array, got {seg.dtype} "
                              f"{seg.shape}")
    if seg.min() < 0:
        raise PreprocessError("segment labels must be >= 0")
    return seg


def _segments(seg: np.ndarray):
    """Yields ``(box, inside)`` for every label present: its bounding box (a pair of slices) and the
    segment's [h, w] bool mask within that box."""
    from scipy import ndimage

    for label, box in enumerate(ndimage.find_objects(seg.astype(np.int64) + 1)):  # find_objects skips 0
        if box is not None:
            yield box, seg[box] == label


def distance_map(segments: np.ndarray) -> np.ndarray:
    """Per-segment Euclidean distance transform: each pixel's distance to the nearest pixel outside its segment.

    Exact Euclidean distances (OpenCV ``DIST_MASK_PRECISE``; the original used the 3×3 approximation).
    The image border counts as a segment edge, so every segment peaks in its interior (the original let
    segments that touch the border peak on it, and gave a one-segment image infinite distances).

    Args:
        segments: [H, W] integer labels.

    Returns:
        [H, W] float32 in [0, 1], normalized by the largest distance in the image.
    """
    import cv2

    seg = _check_segments(segments)
    out = np.zeros(seg.shape, dtype=np.float32)
    for box, inside in _segments(seg):
        # The nearest outside pixel is 4-adjacent to the segment, so the box plus a 1-pixel ring suffices.
        dist = cv2.distanceTransform(np.pad(inside, 1).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        out[box][inside] = dist[1:-1, 1:-1][inside]
    return normalize_max(out)


def skeleton_map(segments: np.ndarray, min_size: int = 100) -> np.ndarray:
    """Morphological skeleton (``skimage.morphology.skeletonize``) of every segment of ≥ ``min_size`` pixels.

    Returns:
        [H, W] float32, 1 on skeleton pixels and 0 elsewhere.
    """
    from skimage.morphology import skeletonize

    seg = _check_segments(segments)
    out = np.zeros(seg.shape, dtype=np.float32)
    for box, inside in _segments(seg):
        if int(inside.sum()) < min_size:
            continue
        skel = skeletonize(np.pad(inside, 1))[1:-1, 1:-1]  # the image border is background
        out[box][skel] = 1.0
    return out


def placement_map(maps: Mapping[str, np.ndarray], weights: Mapping[str, float] | None = None) -> np.ndarray:
    """Weighted sum of content maps normalized to a probability distribution (sums to 1).

    Args:
        maps: name → [H, W] map in [0, 1]; must contain every name with a non-zero weight.
        weights: name → weight ≥ 0; default 0.30 entropy + 0.25 gradient + 0.20 texture + 0.15 saliency
            + 0.10 distance. Any map but ``segments`` and ``placement`` may be weighted.

    Returns:
        [H, W] float32 ≥ 0 summing to 1 (to float32 rounding); uniform when the weighted sum is zero
        everywhere (a flat image).
    """
    w = dict(DEFAULT_WEIGHTS if weights is None else weights)
    check_weights(w)
    used = {k: v for k, v in w.items() if v > 0}
    missing = sorted(set(used) - set(maps))
    if missing:
        raise PreprocessError(f"placement_map needs the map(s) {', '.join(missing)}")
    shapes = {np.shape(maps[k]) for k in used}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise PreprocessError(f"placement maps must share one [H, W] shape, got {sorted(shapes)}")
    acc = np.zeros(next(iter(shapes)), dtype=np.float64)
    for name, weight in used.items():
        acc += weight * np.asarray(maps[name], dtype=np.float64)
    total = float(acc.sum())
    if not np.isfinite(total) or total <= 0.0:
        return np.full(acc.shape, 1.0 / acc.size, dtype=np.float32)
    return (acc / total).astype(np.float32)


def check_weights(weights: Mapping[str, float]) -> None:
    """Raise :class:`PreprocessError` unless ``weights`` are finite, ≥ 0, not all 0, and name weightable maps."""
    bad = sorted(set(weights) - set(WEIGHTABLE_MAPS))
    if bad:
        raise PreprocessError(f"cannot weight {', '.join(bad)}; weightable maps: {', '.join(WEIGHTABLE_MAPS)}")
    for name, value in weights.items():
        if not np.isfinite(value) or value < 0:
            raise PreprocessError(f"weight of {name} must be finite and >= 0, got {value}")
    if not any(v > 0 for v in weights.values()):
        raise PreprocessError("at least one placement weight must be > 0")
