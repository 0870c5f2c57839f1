"""The one ``.lgi`` decoder: bytes → float32 Gaussian parameters → an image.

``lgi decode``, ``lgi app`` and the encoder (which renders its final image from its own bytes) all go
through :func:`decode` and :func:`render`, so they show the same pixels on the same device.

A decode's cost is known before anything renders, so a caller can refuse a file beyond a budget
(:class:`DecodeBudget`, the defaults of every decoder of the format) and draw a large output in bands
of rows (:func:`render_bands`) in bounded memory: the Gaussian count from the header alone (before a
stream is decoded), then the output pixels and the rendering work, an upper bound on the rasterizer's
Gaussian-tile intersections weighted by the blend's cost (:func:`decode_cost`, numpy only).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lgi_dictco.errors import LgiFormatError
from lgi_dictco.gauss.format import LgiHeader, LgiPayload, decode_lgi
from lgi_dictco.gauss.quant import cell_centres, opponent_to_rgb, shape_features_to_params

# The rasterizer's tile side, lgi_gsplat2d.TILE: this leaf cannot import it, so it mirrors it, and
# packages/lgi/tests/test_decode_budgets.py checks the two equal (and equal to csrc/common.h's kTile).
TILE = 16
MAX_RADIUS = float(1 << 30)     # the rasterizer caps radii here (csrc/common.h: kMaxRadius)
#: The decode budget's defaults (docs/reliability.md, "The decode budget"; ``lgi decode --max-pixels /
#: --max-gaussians / --max-work``). They follow what the encoder makes, with headroom, so that time and
#: memory follow the output's size, not what a forger can write into a few hundred bytes.
MAX_OUTPUT_PIXELS = 1 << 28     # 268 M output pixels
#: Gaussians per pixel of the larger of the stored and the output size (the encoder's files at up to 2 bpp
#: hold at most 0.050), but never fewer than MIN_GAUSSIANS: checked from the header before any stream.
GAUSSIANS_PER_PIXEL = 0.125
MIN_GAUSSIANS = 1 << 16
#: Work, in units of about one sum-blended Gaussian-tile intersection of canvas-covering Gaussians (the
#: costliest kind, ~0.1 us here): per 16 x 16 output tile (the encoder's files: at most 584 at
#: their stored size), plus a few per Gaussian, so that a thumbnail, where every Gaussian still touches a
#: tile, is not refused.
WORK_PER_TILE = 1536
WORK_PER_GAUSSIAN = 16
#: The rasterizer's own limit per call (lgi_gsplat2d.MAX_INTERSECTIONS, MAX_PIXEL_SLOTS).
RENDER_CALL_LIMIT = (1 << 31) - 1
#: One band's renderer buffers (output, top-K slots, clamped and 8-bit copies) stay under this.
BAND_BYTES = 256 << 20
#: One band's tile lists (8 bytes per intersection) stay under this many intersections, where a
#: single 16-row band allows it.
BAND_INTERSECTIONS = 1 << 25
#: The largest |colour| a decoded Gaussian may have: ±2^20 is far outside any displayable value and
#: keeps every sum the rasterizer forms (≤ 2^21 Gaussians × K weights) far inside float32.
MAX_ABS_COLOR = float(1 << 20)


def work_weight(slots: int) -> int:
    """Units of work of one Gaussian-tile intersection: 1 for sum blending, 4 for top-K (``slots`` = K > 0).
    Canvas-covering identical Gaussians, the costliest intersections, take 3.0-3.8 times as long top-K as
    summed (K = 6, 10, 32; benchmarks/bench_decode_budget.py weights); ordinary files' top-K
    intersections cost about what summed ones do, so the weight prices a forger's worst case."""
    return 4 if slots else 1


@dataclass(frozen=True)
class DecodeBudget:
    """What one decode may cost. ``None`` fields follow the request (the defaults above).

    Attributes:
        max_pixels: the most output pixels.
        max_gaussians: the most Gaussians in the file (None: ``GAUSSIANS_PER_PIXEL`` per pixel of the larger
            of the stored and the output size, at least ``MIN_GAUSSIANS``).
        max_work: the most work (None: ``WORK_PER_TILE`` per output tile + ``WORK_PER_GAUSSIAN`` per Gaussian).
    """

    max_pixels: int = MAX_OUTPUT_PIXELS
    max_gaussians: int | None = None
    max_work: int | None = None

    def gaussian_limit(self, stored_pixels: int, output_pixels: int) -> int:
        if self.max_gaussians is not None:
            return self.max_gaussians
        return max(MIN_GAUSSIANS, int(GAUSSIANS_PER_PIXEL * max(stored_pixels, output_pixels)))

    def work_limit(self, width: int, height: int, gaussians: int) -> int:
        if self.max_work is not None:
            return self.max_work
        tiles = -(-width // TILE) * -(-height // TILE)
        return WORK_PER_TILE * tiles + WORK_PER_GAUSSIAN * gaussians


@dataclass
class DecodedSet:
    """A decoded ``.lgi`` file.

    Attributes:
        payload: the quantized integers, in Morton order.
        params: float32 parameters in the rasterizer's convention (unit square): ``means`` [N, 2],
            ``scales`` [N, 2], ``rotations`` [N], ``colors`` [N, C] (RGB, or gray).
    """

    payload: LgiPayload
    params: dict[str, np.ndarray]

    @property
    def header(self) -> LgiHeader:
        return self.payload.header

    @property
    def chunk_bytes(self) -> dict[str, int]:
        return self.payload.chunk_bytes


def dequantize(payload: LgiPayload) -> dict[str, np.ndarray]:
    """Float32 Gaussian parameters in the rasterizer's convention (unit square).

    Raises:
        LgiFormatError: the values decode to non-finite or zero scales, or to colours that are not
            finite or beyond ±:data:`MAX_ABS_COLOR` (checked after the colour transform).
    """
    h = payload.header
    cls = payload.class_ids()
    drop = np.asarray(h.class_drop, np.int64)[cls]
    means = cell_centres(payload.positions, h.pos_bits, drop)
    with np.errstate(over="ignore", invalid="ignore"):
        scales, rotations = shape_features_to_params(payload.shape.dequantize(cls))
    if not (np.isfinite(scales).all() and (scales > 0).all() and np.isfinite(rotations).all()):
        raise LgiFormatError(".lgi shape values decode to non-finite or zero scales (corrupt or hostile file)")
    with np.errstate(over="ignore", invalid="ignore"):
        colors = payload.color.dequantize(cls)
        if h.color_space == "opp":
            colors = opponent_to_rgb(colors)
    # Checked after the colour transform: a huge value can pass before it and overflow in it.
    if not np.isfinite(colors).all():
        raise LgiFormatError(".lgi colour values are not finite (corrupt or hostile file)")
    if colors.size and float(np.abs(colors).max()) > MAX_ABS_COLOR:
        raise LgiFormatError(f".lgi colour values reach {float(np.abs(colors).max()):.3g}, beyond the decoder "
                             f"limit of ±{MAX_ABS_COLOR:.0f} (corrupt or hostile file)")
    return {"means": means.astype(np.float32), "scales": scales, "rotations": rotations,
            "colors": colors.astype(np.float32)}


def decode(data: bytes) -> DecodedSet:
    """``.lgi`` bytes → the quantized payload and its float32 Gaussian parameters.

    Raises:
        LgiFormatError: anything wrong with the file, with a message saying what and where.
    """
    payload = decode_lgi(data)
    return DecodedSet(payload=payload, params=dequantize(payload))


def window(params: dict[str, np.ndarray], x0: float, y0: float, zoom: float) -> dict[str, np.ndarray]:
    """The parameters seen through the window [x0, x0 + 1/zoom] × [y0, y0 + 1/zoom] of the unit square,
    mapped back onto the unit square (one uniform scale, so shapes keep their aspect)."""
    offset = np.array([x0, y0], np.float32)
    return dict(params, means=((params["means"] - offset) * np.float32(zoom)).astype(np.float32),
                scales=(params["scales"] * np.float32(zoom)).astype(np.float32))


def render(params: dict, header: LgiHeader, width: int, height: int, *, rasterize, device="cpu",
           backend: str = "auto"):
    """[C, height, width] float32 image in [0, 1] (clamped) from decoded parameters.

    lgi-dictco is a leaf package and never imports the renderer (tests/test_workspace.py); the caller
    passes it: ``rasterize=lgi_gsplat2d.render``.

    Args:
        params: ``means`` [N, 2], ``scales`` [N, 2], ``rotations`` [N], ``colors`` [N, C], numpy arrays
            or tensors (moved to ``device``).
        header: the file's header: channels, render mode and top-k.
        width, height: output size in pixels (any size: the parameters are in the unit square).
        rasterize: ``lgi_gsplat2d.render``.
        device, backend: where and with which renderer backend to draw.
    """
    import torch

    p = {k: torch.as_tensor(v, device=device) for k, v in params.items()}
    if p["means"].shape[0] == 0:
        return torch.zeros(header.channels, height, width, device=device)
    with torch.no_grad():
        return rasterize(p["means"], p["scales"], p["rotations"], p["colors"], height, width,
                         mode=header.render_mode, k=header.topk, backend=backend).permute(2, 0, 1).clamp(0, 1)


# --- decode cost and bands --------------------------------------------------------------------------

def _pixel_bytes(channels: int, slots: int) -> int:
    """Bytes per output pixel while one band renders: float32 output, its clamped, scaled and rounded
    copies, the 8-bit row, and for top-K the K int32 indices, K float32 weights and their sum."""
    return 4 * channels * 4 + channels + (8 * slots + 4 if slots else 0)


@dataclass(frozen=True)
class DecodeCost:
    """What drawing a decoded set at ``width`` x ``height`` costs, known before anything renders.

    Attributes:
        intersections: an upper bound on the Gaussian-tile pairs the rasterizer visits (each pair is
            up to 256 pixel evaluations): the work of the decode.
        row_intersections: [ceil(height / 16)] the same bound per row of tiles.
        slots: K per pixel for a top-K file, 0 for a sum file.
    """

    width: int
    height: int
    channels: int
    slots: int
    gaussians: int
    intersections: int
    row_intersections: np.ndarray

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def work(self) -> int:
        """The priced work: intersections times :func:`work_weight` of the blend (what budgets limit)."""
        return self.intersections * work_weight(self.slots)

    def bands(self, band_bytes: int = BAND_BYTES, band_rows: int | None = None) -> list[tuple[int, int]]:
        """Row ranges [y0, y1) to render one at a time; one range when the whole image fits a band.

        Args:
            band_bytes: the renderer buffers one band may hold.
            band_rows: force this band height (tests); by default bands are whole rows of tiles sized
                by ``band_bytes`` and :data:`BAND_INTERSECTIONS`.
        """
        w, h = self.width, self.height
        if band_rows is not None:
            if band_rows < 1:
                raise ValueError(f"band_rows must be >= 1, got {band_rows}")
            return [(y, min(y + band_rows, h)) for y in range(0, h, band_rows)]
        rows = max(1, band_bytes // (w * _pixel_bytes(self.channels, self.slots)))
        if rows >= h and self.intersections <= BAND_INTERSECTIONS:
            return [(0, h)]
        if rows < TILE:  # an absurdly wide image: bands of single rows keep h * w * k inside the limit
            return [(y, min(y + rows, h)) for y in range(0, h, rows)]
        tile_rows = rows // TILE
        out, t, nt = [], 0, self.row_intersections.size
        while t < nt:
            # Whole tile rows, as many as the pixel and the tile-list budgets allow (at least one).
            end, work = t + 1, int(self.row_intersections[t])
            while end < nt and end - t < tile_rows and work + int(self.row_intersections[end]) <= BAND_INTERSECTIONS:
                work += int(self.row_intersections[end])
                end += 1
            out.append((t * TILE, min(end * TILE, h)))
            t = end
        return out

    def band_intersections(self, bands: list[tuple[int, int]]) -> int:
        """The largest bound on one band's intersections (whole tile rows a band touches)."""
        r = self.row_intersections
        return max((int(r[y0 // TILE:(y1 - 1) // TILE + 1].sum()) for y0, y1 in bands), default=0)

    def memory_bytes(self, bands: list[tuple[int, int]], full_output_bytes: int) -> int:
        """An estimate of the decode's peak memory beyond the interpreter: the parameters and their
        projection (about 200 bytes per Gaussian), the largest band's buffers and tile lists (8 bytes
        per intersection), and ``full_output_bytes`` for the assembled result."""
        rows = max((y1 - y0 for y0, y1 in bands), default=0)
        return (200 * self.gaussians + rows * self.width * _pixel_bytes(self.channels, self.slots)
                + 8 * self.band_intersections(bands) + full_output_bytes)


def decode_cost(params: dict[str, np.ndarray], header: LgiHeader, width: int, height: int) -> DecodeCost:
    """The work and the band plan of drawing ``params`` at ``width`` x ``height``, in numpy (no torch).

    Every Gaussian's pixel box is computed as the rasterizer computes it (lgi_gsplat2d: radius
    ceil(3 sqrt(lambda_max)) of the pixel covariance, capped at 2^30, the box of pixel centres within it,
    clipped to the image) with one pixel of margin, so the count is an upper bound on the rasterizer's.
    """
    n = int(params["means"].shape[0])
    slots = header.topk if header.render_mode != "sum" else 0
    nty = -(-height // TILE)
    if n == 0:
        return DecodeCost(width, height, header.channels, slots, 0, 0, np.zeros(nty, np.int64))
    means = np.asarray(params["means"], np.float32)
    px = (means[:, 0] * np.float32(width)).astype(np.float64)   # float32 products, as the kernels form them
    py = (means[:, 1] * np.float32(height)).astype(np.float64)
    s = np.asarray(params["scales"], np.float32).astype(np.float64)
    th = np.asarray(params["rotations"], np.float32).astype(np.float64).reshape(-1)
    c, sn = np.cos(th), np.sin(th)
    v1, v2 = s[:, 0] ** 2, s[:, 1] ** 2
    with np.errstate(over="ignore", invalid="ignore"):
        sxx = float(width) ** 2 * (c * c * v1 + sn * sn * v2)
        syy = float(height) ** 2 * (sn * sn * v1 + c * c * v2)
        sxy = float(width) * height * c * sn * (v1 - v2)
        half = 0.5 * (sxx - syy)
        lmax = 0.5 * (sxx + syy) + np.sqrt(half * half + sxy * sxy)
        r = np.ceil(3.0 * np.sqrt(np.maximum(lmax, 0.0)) * (1 + 1e-6)) + 1.0
    r = np.where(r <= MAX_RADIUS, r, MAX_RADIUS + 1.0)   # also NaN -> the cap: an upper bound either way
    j0 = np.maximum(np.ceil(px - r - 0.5), 0.0)
    j1 = np.minimum(np.floor(px + r - 0.5), width - 1.0)
    i0 = np.maximum(np.ceil(py - r - 0.5), 0.0)
    i1 = np.minimum(np.floor(py + r - 0.5), height - 1.0)
    live = (j0 <= j1) & (i0 <= i1)
    tj0, tj1 = (j0[live] // TILE).astype(np.int64), (j1[live] // TILE).astype(np.int64)
    ti0, ti1 = (i0[live] // TILE).astype(np.int64), (i1[live] // TILE).astype(np.int64)
    cols = (tj1 - tj0 + 1).astype(np.float64)
    # Each Gaussian adds its tile columns to every tile row it spans: a difference array over rows.
    diff = np.bincount(ti0, cols, minlength=nty + 1) - np.bincount(ti1 + 1, cols, minlength=nty + 1)
    rows = np.rint(np.cumsum(diff[:nty])).astype(np.int64)
    return DecodeCost(width, height, header.channels, slots, n, int(rows.sum()), rows)


def render_bands(params: dict, header: LgiHeader, width: int, height: int, bands: list[tuple[int, int]], *,
                 project, row_spans, rasterize_rows, device="cpu", backend: str = "auto"):
    """Render the image one band of rows at a time: yields ``(y0, band)``, band [C, y1 - y0, width] in
    [0, 1] (clamped), for every ``(y0, y1)`` of ``bands`` in order.

    The Gaussians are projected once at the full size; each band takes the ones whose pixel box meets
    its rows (in their order, so top-K ties break the same way), shifted up by ``y0``, and rasterizes a
    band-high canvas. Pixels equal the unbanded render's to float rounding (a shift by ``y0`` is exact
    for Gaussians centred at or below ``y0``, rounds by an ulp above it); one band ``(0, height)`` is the
    unbanded render, bit for bit.

    Args:
        params, header, width, height, device, backend: as :func:`render`.
        bands: row ranges, e.g. :meth:`DecodeCost.bands`.
        project, row_spans, rasterize_rows: ``lgi_gsplat2d.project_gaussians_2d_scale_rot``,
            ``lgi_gsplat2d.row_spans`` and ``lgi_gsplat2d.rasterize_rows`` (the caller passes them: this
            package is a leaf; the pixel boxes and tiles of a band are the renderer's own).
    """
    import torch

    p = {k: torch.as_tensor(v, device=device) for k, v in params.items()}
    n = p["means"].shape[0]
    with torch.no_grad():
        if n:
            xys, radii, conics, _ = project(p["means"], p["scales"], p["rotations"], height, width, backend=backend)
            top, bottom = row_spans(xys, radii, height, width)
        for y0, y1 in bands:
            if n == 0:
                yield y0, torch.zeros(header.channels, y1 - y0, width, device=device)
                continue
            idx = torch.nonzero((bottom >= y0) & (top < y1)).squeeze(1)
            out = rasterize_rows(xys[idx], radii[idx], conics[idx], p["colors"][idx], width, (y0, y1),
                                 mode=header.render_mode, k=header.topk, backend=backend)
            yield y0, out.permute(2, 0, 1).clamp(0, 1)
