"""Public, stateless functions: 2D Gaussian projection and rasterization.

Conventions (the same everywhere in LGI):

* A Gaussian lives in the unit square. ``means`` [N, 2] = (x, y) in [0, 1]^2, x to the right
  (column / W), y down (row / H). Pixel (row i, column j) of an H x W image has its centre at
  ((j + 0.5) / W, (i + 0.5) / H).
* ``scales`` [N, 2] = standard deviations (s1, s2) in unit-square units; ``rotations`` [N] (or [N, 1]) =
  angle theta in radians. Unit-square covariance Sigma = R(theta) diag(s1^2, s2^2) R(theta)^T with
  R(theta) = [[cos, -sin], [sin, cos]], so s1 lies along (cos theta, sin theta). In pixels
  Sigma_px = A Sigma A with A = diag(W, H). The same set therefore renders at any output size.
* Support: Gaussian i touches pixel p only where q = d^T Sigma_px^-1 d <= 9 (3 sigma), d = pixel centre
  minus the Gaussian's centre in pixels; there w_i(p) = exp(-max(q, 0) / 2), elsewhere 0 (q is
  computed in the renderer's precision, and rounding makes it negative for a Gaussian whose axes differ
  by more than ~10^3.5: the weight stays at most 1). radius = ceil(3 sqrt(lambda_max(Sigma_px))); the
  radius box contains that ellipse, and tiles are 16 x 16.
* ``mode="sum"``: I(p) = sum_i c_i o_i w_i(p) (o_i = opacity, 1 when not given).
  ``mode="topk"``: per pixel the K largest w_i (the K smallest q; ties go to the lower index),
  I(p) = sum c_i v_i / (sum v_i + 0.01) with v_i = w_i - e^-4.5, which falls to 0 at the cutoff, so the
  image is continuous in the Gaussians' parameters; gradients flow through the selected K. K is 1..32.
  The 0.01 draws a barely covered pixel darker, which keeps fits from leaving pixels uncovered (black).
  ``mode="topk-hard"``: v_i = w_i and 1e-4, a jump of e^-4.5 at the cutoff (the top-K blend of
  lgi-gsplat2d 0.1, kept for files made with it; docs/training.md shows why it was replaced).
* A zero scale culls a Gaussian (radius 0: it draws nothing, its gradients are 0).

Limits of the native rasterizers (their buffers are indexed with 32-bit integers): height x width x k
<= 2^31 - 1 (:data:`MAX_PIXEL_SLOTS`; k counts in both modes) and at most 2^31 - 1 Gaussian-tile
intersections per call (:data:`MAX_INTERSECTIONS`, the sum of ``num_tiles_hit``). A call beyond them
raises :class:`RenderLimitError` (a ``ValueError``) before any image buffer is allocated; render a
large image in bands of rows instead (:func:`render_rows`, differentiable; the decoder's
``lgi_dictco.gauss.render_bands``).

``backend``: ``"auto"`` (CUDA tensors -> CUDA kernels, CPU tensors -> C++/OpenMP kernels, a failed build
-> one warning and the PyTorch reference), ``"cpu"``, ``"cuda"`` or ``"torch"`` (the reference). The
native CPU backend takes float32 and float64, the CUDA one float32; ``"auto"`` sends float64 CUDA tensors
to the reference. Native results are deterministic: the same inputs give bitwise identical outputs and
gradients, whatever the thread count.
"""

from __future__ import annotations

import torch

from . import _reference
from ._autograd import MODES, ProjectGaussians, RasterizeNoTiles, RasterizeTiles
from ._backend import resolve
from .native import TILE as _TILE  # the rasterizer's tile side, in pixels (named once: native.TILE)
from .native import RenderLimitError

__all__ = ["MAX_INTERSECTIONS", "MAX_PIXEL_SLOTS", "RenderLimitError", "project_gaussians_2d_scale_rot",
           "rasterize_gaussians_sum", "rasterize_gaussians_no_tiles", "render", "render_rows",
           "row_spans", "gaussians_in_rows", "rasterize_rows"]

_MAX_K = 32
MAX_PIXEL_SLOTS = (1 << 31) - 1     # height * width * k, the top-K buffers' 32-bit index space
MAX_INTERSECTIONS = (1 << 31) - 1   # Gaussian-tile pairs of one call, the tile lists' 32-bit offsets


def _check_limits(height: int, width: int, k: int, num_tiles_hit: torch.Tensor | None = None) -> None:
    """Refuse, before any buffer exists, what the native kernels would refuse (or could not index)."""
    slots = height * width * k
    if slots > MAX_PIXEL_SLOTS:
        raise RenderLimitError(f"image too large for one render call: {height} x {width} x k={k} = {slots} "
                               f"> 2^31 - 1; render it in bands of rows")
    # Counted on the host only where that costs no device sync; the CUDA extension checks the same
    # total itself and its error is translated below.
    if num_tiles_hit is not None and num_tiles_hit.device.type == "cpu" and num_tiles_hit.numel():
        total = int(num_tiles_hit.sum(dtype=torch.int64))
        if total > MAX_INTERSECTIONS:
            raise RenderLimitError(f"{total} Gaussian-tile intersections exceed the rasterizer's limit of "
                                   f"2^31 - 1 per call; render at a lower resolution or in bands of rows")


def _translate_limit(exc: ValueError) -> ValueError:
    """The native kernels' own 2^31 checks (TORCH_CHECK_VALUE, std::length_error) as RenderLimitError."""
    msg = str(exc)
    if "2^31" in msg:
        return RenderLimitError(msg.splitlines()[0])
    return exc


def _check_size(height, width) -> tuple[int, int]:
    for name, v in (("height", height), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    return height, width


def _check_mode(mode, k) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be 'sum', 'topk' or 'topk-hard', got {mode!r}")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= _MAX_K:
        raise ValueError(f"k must be an int in [1, {_MAX_K}], got {k!r}")


def _check_tensor(name: str, t, shape: tuple, ref: torch.Tensor | None) -> torch.Tensor:
    """Check type, shape (None = any size), dtype and device against ``ref``; return it contiguous."""
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != len(shape) or any(s is not None and s != d for s, d in zip(shape, t.shape)):
        want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        raise ValueError(f"{name} must have shape {want}, got {list(t.shape)}")
    if ref is None:
        if t.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"{name} must be float32 or float64, got {t.dtype}")
    else:
        if t.device != ref.device:
            raise ValueError(f"{name} is on {t.device} but the other inputs are on {ref.device}")
        if t.dtype != ref.dtype:
            raise ValueError(f"{name} has dtype {t.dtype} but the other inputs have {ref.dtype}")
    return t.contiguous()


def _check_finite(**tensors: torch.Tensor) -> None:
    items = [(n, t) for n, t in tensors.items() if t is not None and t.numel() > 0]
    if not items:
        return
    ok = torch.stack([torch.isfinite(t).all() for _, t in items])
    if not bool(ok.all()):
        bad = [n for (n, _), good in zip(items, ok.tolist()) if not good]
        raise ValueError(f"{', '.join(bad)} contain(s) NaN or Inf")


def _check_gaussians(means, scales, rotations):
    means = _check_tensor("means", means, (None, 2), None)
    n = means.shape[0]
    scales = _check_tensor("scales", scales, (n, 2), means)
    if isinstance(rotations, torch.Tensor) and rotations.dim() == 2:
        rotations = _check_tensor("rotations", rotations, (n, 1), means).reshape(n)
    else:
        rotations = _check_tensor("rotations", rotations, (n,), means)
    _check_finite(means=means, scales=scales, rotations=rotations)
    return means, scales, rotations


def _check_appearance(colors, opacities, ref, mode):
    n = ref.shape[0]
    colors = _check_tensor("colors", colors, (n, None), ref)
    if colors.shape[1] < 1:
        raise ValueError("colors must have at least one channel")
    if opacities is not None:
        if mode != "sum":
            raise ValueError("opacities are used in mode='sum' only (top-K normalises the weights)")
        if isinstance(opacities, torch.Tensor) and opacities.dim() == 2:
            opacities = _check_tensor("opacities", opacities, (n, 1), ref).reshape(n)
        else:
            opacities = _check_tensor("opacities", opacities, (n,), ref)
    _check_finite(colors=colors, opacities=opacities)
    return colors, opacities


def _check_projected(xys, radii, conics, num_tiles_hit):
    xys = _check_tensor("xys", xys, (None, 2), None)
    n = xys.shape[0]
    conics = _check_tensor("conics", conics, (n, 3), xys)
    out = []
    for name, t in (("radii", radii), ("num_tiles_hit", num_tiles_hit)):
        if t is None:
            out.append(None)
            continue
        if not isinstance(t, torch.Tensor) or t.shape != (n,) or t.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"{name} must be an int32 tensor of shape [{n}] (from the projection)")
        if t.device != xys.device:
            raise ValueError(f"{name} is on {t.device} but xys is on {xys.device}")
        out.append(t.to(torch.int32).contiguous())
    radii, num_tiles_hit = out
    # Culled Gaussians (radius 0) may carry infinite conics; visible ones must be finite.
    live = (radii > 0)[:, None]
    _check_finite(xys=torch.where(live, xys, 0.0), conics=torch.where(live, conics, 0.0))
    return xys, radii, conics, num_tiles_hit


def project_gaussians_2d_scale_rot(means, scales, rotations, height, width, tile=16, backend="auto"):
    """Project unit-square Gaussians to pixel space.

    Args:
        means: [N, 2] centres (x, y) in the unit square.
        scales: [N, 2] standard deviations (s1, s2), unit-square units (nonzero; a zero culls).
        rotations: [N] or [N, 1] angles in radians (s1 along (cos, sin)).
        height, width: output size in pixels.
        tile: tile size for ``num_tiles_hit`` (the rasterizers need 16).
        backend: ``"auto" | "cpu" | "cuda" | "torch"``.

    Returns:
        xys [N, 2] pixel-space centres (x * W, y * H); radii [N] int32, ceil(3 sqrt(lambda_max)) in
        pixels, 0 for culled (degenerate or off-screen) Gaussians; conics [N, 3] (a, b, c) of the inverse
        pixel covariance [[a, b], [b, c]]; num_tiles_hit [N] int32, tiles touched by the radius box.
        xys and conics are differentiable with respect to means, scales and rotations.
    """
    height, width = _check_size(height, width)
    if isinstance(tile, bool) or not isinstance(tile, int) or tile < 1:
        raise ValueError(f"tile must be a positive int, got {tile!r}")
    means, scales, rotations = _check_gaussians(means, scales, rotations)
    kind, ext = resolve(backend, means.device, means.dtype)
    return _project(kind, ext, means, scales, rotations, height, width, tile)


def _project(kind, ext, means, scales, rotations, height, width, tile=16):
    if kind == "torch":
        return _reference.project_gaussians_2d_scale_rot(means, scales, rotations, height, width, tile)
    return ProjectGaussians.apply(means, scales, rotations, height, width, tile, ext, torch.get_num_threads())


def rasterize_gaussians_sum(xys, radii, conics, num_tiles_hit, colors, height, width, mode="topk", k=10,
                            opacities=None, backend="auto"):
    """Rasterize projected Gaussians into 16x16 tiles.

    Args:
        xys: [N, 2] pixel-space centres, radii: [N] int32, conics: [N, 3], num_tiles_hit: [N] int32, all
            from :func:`project_gaussians_2d_scale_rot` with ``tile=16``.
        colors: [N, C] colours, C >= 1.
        height, width: output size in pixels.
        mode: ``"sum"``, ``"topk"`` or ``"topk-hard"`` (see the module docstring); k: K of top-K, 1..32.
        opacities: [N] or [N, 1], sum mode only (default: all ones).
        backend: ``"auto" | "cpu" | "cuda" | "torch"``.

    Returns:
        [H, W, C] image, differentiable with respect to xys, conics, colors and opacities.

    Raises:
        RenderLimitError: height x width x k or the sum of ``num_tiles_hit`` beyond 2^31 - 1.
    """
    height, width = _check_size(height, width)
    _check_mode(mode, k)
    xys, radii, conics, num_tiles_hit = _check_projected(xys, radii, conics, num_tiles_hit)
    colors, opacities = _check_appearance(colors, opacities, xys, mode)
    kind, ext = resolve(backend, xys.device, xys.dtype)
    return _rasterize(kind, ext, xys, radii, conics, num_tiles_hit, colors, height, width, mode, k, opacities)


def _rasterize(kind, ext, xys, radii, conics, num_tiles_hit, colors, height, width, mode, k, opacities):
    _check_limits(height, width, k, num_tiles_hit)
    if kind == "torch":
        return _reference.rasterize_gaussians_sum(xys, radii, conics, num_tiles_hit, colors, height, width,
                                                  mode, k, opacities)
    try:
        return RasterizeTiles.apply(xys, conics, colors, opacities, radii, num_tiles_hit, height, width, mode, k,
                                    ext, torch.get_num_threads())
    except ValueError as exc:
        raise _translate_limit(exc) from exc


def rasterize_gaussians_no_tiles(xys, radii, conics, colors, height, width, mode="topk", k=10, opacities=None,
                                 backend="auto"):
    """Untiled rasterization, for tests and comparison: every pixel visits every Gaussian.

    Same arguments and result as :func:`rasterize_gaussians_sum` without ``num_tiles_hit``; O(N H W).
    """
    height, width = _check_size(height, width)
    _check_mode(mode, k)
    xys, radii, conics, _ = _check_projected(xys, radii, conics, None)
    colors, opacities = _check_appearance(colors, opacities, xys, mode)
    kind, ext = resolve(backend, xys.device, xys.dtype)
    _check_limits(height, width, k)
    if kind == "torch":
        return _reference.rasterize_gaussians_no_tiles(xys, radii, conics, colors, height, width, mode, k,
                                                       opacities)
    try:
        return RasterizeNoTiles.apply(xys, conics, colors, opacities, radii, height, width, mode, k, ext,
                                      torch.get_num_threads())
    except ValueError as exc:
        raise _translate_limit(exc) from exc


def render(means, scales, rotations, colors, height, width, mode="topk", k=10, backend="auto", opacities=None):
    """Render unit-square Gaussians to an image: projection followed by tiled rasterization.

    Args:
        means: [N, 2] centres (x, y) in the unit square (x = column / W, y = row / H).
        scales: [N, 2] standard deviations (s1, s2) in unit-square units.
        rotations: [N] or [N, 1] angles in radians.
        colors: [N, C] colours.
        height, width: output size; the same set renders at any size (2x is just a bigger call).
        mode: ``"topk"`` (default, K largest weights normalised), ``"sum"`` (weighted sum) or
            ``"topk-hard"`` (the earlier top-K blend; module docstring).
        k: K of top-K, 1..32.
        backend: ``"auto" | "cpu" | "cuda" | "torch"``.
        opacities: [N] or [N, 1], sum mode only.

    Returns:
        [H, W, C] image of the inputs' dtype, differentiable with respect to means, scales, rotations,
        colors and opacities.

    Raises:
        RenderLimitError: height x width x k or the tile intersections beyond 2^31 - 1 (module docstring).
    """
    height, width = _check_size(height, width)
    _check_mode(mode, k)
    _check_limits(height, width, k)
    means, scales, rotations = _check_gaussians(means, scales, rotations)
    colors, opacities = _check_appearance(colors, opacities, means, mode)
    kind, ext = resolve(backend, means.device, means.dtype)
    xys, radii, conics, tiles = _project(kind, ext, means, scales, rotations, height, width)
    return _rasterize(kind, ext, xys, radii, conics, tiles, colors, height, width, mode, k, opacities)



def row_spans(xys, radii, height, width):
    """The first and last pixel row [N] (int64) of each projected Gaussian's box in a ``height`` x ``width``
    image, as the rasterizer bins it; (0, -1) for a Gaussian that draws nothing. For
    :func:`gaussians_in_rows`, computed once for many bands."""
    _, _, i0, i1, empty = _reference.pixel_boxes(xys, radii, height, width)
    return torch.where(empty, 0, i0), torch.where(empty, -1, i1)


def gaussians_in_rows(spans, rows):
    """Indices [M] (int64, ascending) of the Gaussians whose box (``spans``, from :func:`row_spans`) meets
    rows ``(y0, y1)``: those :func:`rasterize_rows` needs for that band."""
    first, last = spans
    y0, y1 = (int(v) for v in rows)
    return torch.nonzero((last >= y0) & (first < y1)).squeeze(1)


def rasterize_rows(xys, radii, conics, colors, width, rows, mode="topk", k=10, backend="auto", opacities=None):
    """Rasterize rows ``(y0, y1)`` of an image from Gaussians projected at its full size.

    Args:
        xys, radii, conics, colors, opacities: of the Gaussians that meet the rows
            (:func:`gaussians_in_rows`), in their order in the whole set (top-K ties go to the lower index),
            projected for the whole image by :func:`project_gaussians_2d_scale_rot`.
        width: the image's width; rows: ``(y0, y1)``, the band.

    Returns:
        [y1 - y0, W, C]: rows y0..y1 of the whole image's render, to float rounding (the shift by ``y0``
        rounds a centre above ``y0`` by an ulp); differentiable in xys, conics, colors and opacities.
    """
    y0, y1 = (int(v) for v in rows)
    height, width = _check_size(y1 - y0, width)
    _check_mode(mode, k)
    _check_limits(height, width, k)
    xys, radii, conics, _ = _check_projected(xys, radii, conics, None)
    colors, opacities = _check_appearance(colors, opacities, xys, mode)
    kind, ext = resolve(backend, xys.device, xys.dtype)
    band_xys = xys - torch.tensor([0.0, float(y0)], dtype=xys.dtype, device=xys.device)
    with torch.no_grad():
        band_radii, tiles = _reference.tiles_hit(band_xys, radii, height, width, _TILE)
    return _rasterize(kind, ext, band_xys, band_radii, conics, tiles, colors, height, width, mode, k, opacities)


def render_rows(means, scales, rotations, colors, height, width, rows, mode="topk", k=10, backend="auto",
                opacities=None):
    """Rows ``rows = (y0, y1)`` of :func:`render`'s image, with buffers for those rows only.

    The Gaussians are projected at the full ``height`` x ``width``; those whose pixel box meets the rows
    are kept in their order (so top-K ties break as in the whole render), shifted up by ``y0`` and
    rasterized on a ``(y1 - y0)``-row canvas (:func:`gaussians_in_rows`, :func:`rasterize_rows`). The
    pixels equal ``render(...)[y0:y1]`` to float rounding, and rows ``(0, height)`` are :func:`render`'s
    image bit for bit. Differentiable like :func:`render`: the gradients of a loss summed over bands of
    rows add up to those of the loss over the whole image, so an image whose per-pixel buffers would not
    fit (top-K keeps K indices and weights a pixel) is trained band by band. (A loop over many bands
    projects once and calls :func:`rasterize_rows` per band instead: ``lgi_train.bands`` does.)

    Returns:
        [y1 - y0, W, C] image of the inputs' dtype.
    """
    height, width = _check_size(height, width)
    y0, y1 = _check_rows(height, rows)
    if (y0, y1) == (0, height):
        return render(means, scales, rotations, colors, height, width, mode, k, backend, opacities)
    _check_mode(mode, k)
    means, scales, rotations = _check_gaussians(means, scales, rotations)
    colors, opacities = _check_appearance(colors, opacities, means, mode)
    kind, ext = resolve(backend, means.device, means.dtype)
    xys, radii, conics, _ = _project(kind, ext, means, scales, rotations, height, width)
    idx = gaussians_in_rows(row_spans(xys, radii, height, width), rows)
    return rasterize_rows(xys[idx], radii[idx], conics[idx], colors[idx], width, rows, mode, k, backend,
                          None if opacities is None else opacities[idx])


def _check_rows(height: int, rows) -> tuple[int, int]:
    y0, y1 = (int(v) for v in rows)
    if not 0 <= y0 < y1 <= height:
        raise ValueError(f"rows ({y0}, {y1}) are not a band of a {height}-row image")
    return y0, y1
