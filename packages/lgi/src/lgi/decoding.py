"""Decoding a ``.lgi`` file for the API, the CLI and the app: needs only lgi-dictco and lgi-gsplat2d.

The decoder itself is :mod:`lgi_dictco.gauss.decoder`; this module adds the user-level requests (output
size, windows), their budget and its errors. Every request is priced before anything renders
(:func:`prepare`) against one :class:`~lgi_dictco.gauss.DecodeBudget`: the Gaussian count from the
header, before any stream is decoded (``max_gaussians``); the output's pixels (``max_pixels``); and the
rendering work, an upper bound on the rasterizer's Gaussian-tile intersections weighted by the blend
(``max_work``). The defaults follow the output's size, so a forged file that asks for minutes or
gigabytes is refused in the time it takes to read its header or parse it. An output too large for one
render call is drawn in bands of rows; :func:`write_png` streams those bands into the PNG, so memory
stays bounded by one band whatever the output size.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from lgi_dictco.gauss.decoder import BAND_BYTES, MAX_OUTPUT_PIXELS, RENDER_CALL_LIMIT, DecodeBudget
from lgi_dictco.pixels import to_uint8  # the one 8-bit conversion, re-exported for the decoders here

__all__ = ["BAND_BYTES", "MAX_OUTPUT_PIXELS", "DecodeBudget", "DecodeError", "Decoded", "Plan", "decode",
           "decode_window", "info_report", "output_size", "prepare", "render_uint8", "renderer", "to_png_bytes", "to_uint8", "write_png"]


class DecodeError(ValueError):
    """The requested output cannot be produced (e.g. an absurd size); the message says why, naming the
    argument at fault in backticks (`` `max_pixels` ``), which the command line shows as its flag.

    Attributes:
        option: that argument's name, or None.
        limit: whether a safety limit refused it (raising ``option`` allows it), not a bad value.
    """

    def __init__(self, message: str, option: str | None = None, limit: bool = False):
        super().__init__(message)
        self.option, self.limit = option, limit


@dataclass
class Decoded:
    image: object        # torch.Tensor [C, H, W] in [0, 1]
    header: object       # lgi_dictco.gauss.LgiHeader
    chunk_bytes: dict
    params: dict | None = None  # the dequantized Gaussians (numpy, unit square), from decode_window


@dataclass
class Plan:
    """A priced decode request: what will be drawn, at which size, for how much work, in which bands.

    Attributes:
        params: the Gaussians to draw (numpy, unit square; already windowed for a window request).
        source_params: the file's own dequantized Gaussians (== ``params`` unless windowed).
        cost: ``lgi_dictco.gauss.DecodeCost`` of drawing ``params`` at width x height.
        limits: (the most Gaussians, the most work) of the budget it was priced against.
        bands: the row ranges it renders in (one range: the ordinary, unbanded render).
    """

    header: object
    chunk_bytes: dict
    params: dict
    source_params: dict
    width: int
    height: int
    cost: object
    bands: list = field(default_factory=list)
    limits: tuple = (None, None)  # the budget it was priced against: (most Gaussians, most work)

    @property
    def work(self) -> int:
        """The priced work (``DecodeCost.work``: weighted intersections)."""
        return self.cost.work

    def memory_bytes(self, png: bool = True) -> int:
        """Estimated peak bytes of the render: one band's buffers, plus the assembled float image when
        not streaming to PNG (``png=False``: what :func:`decode` returns)."""
        full = 0 if png else 4 * self.header.channels * self.width * self.height
        return self.cost.memory_bytes(self.bands, full)


def output_size(width: int, height: int, scale: float | None, out_width: int | None,
                max_pixels: int = MAX_OUTPUT_PIXELS) -> tuple[int, int]:
    """(W, H) of the decoded image; the aspect ratio of the stored size is kept."""
    if scale is not None and out_width is not None:
        raise DecodeError("give `scale` or `width`, not both", "scale")
    if out_width is not None:
        if out_width < 1:
            raise DecodeError(f"`width` must be >= 1, got {out_width}", "width")
        scale = out_width / width
    scale = 1.0 if scale is None else scale
    if not scale > 0 or scale == float("inf"):
        raise DecodeError(f"`scale` must be > 0 and finite, got {scale}", "scale")
    if width * scale * height * scale > 4 * max_pixels + 4:  # before round(): a huge float would not fit an int
        raise DecodeError(f"output at scale {scale:g} of {width}x{height} exceeds the decoder limit of "
                          f"{max_pixels} pixels (`max_pixels`)", "max_pixels", limit=True)
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    if w * h > max_pixels:
        raise DecodeError(f"output {w}x{h} exceeds the decoder limit of {max_pixels} pixels (`max_pixels`)",
                          "max_pixels", limit=True)
    return w, h


def _check_budgets(max_pixels, max_gaussians, max_work) -> DecodeBudget:
    for name, v in (("max_pixels", max_pixels), ("max_gaussians", max_gaussians), ("max_work", max_work)):
        if v is None and name != "max_pixels":
            continue
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise DecodeError(f"`{name}` must be a whole number >= 1, got {v!r}", name)
    return DecodeBudget(max_pixels, max_gaussians, max_work)


def prepare(data: bytes, scale: float | None = None, width: int | None = None, *, window: tuple | None = None,
            max_pixels: int = MAX_OUTPUT_PIXELS, max_gaussians: int | None = None, max_work: int | None = None,
            band_bytes: int = BAND_BYTES, band_rows: int | None = None) -> Plan:
    """Parse, dequantize and price a decode request, refusing it before anything renders.

    Args:
        data: the ``.lgi`` bytes.
        scale, width: the output size (``lgi decode --scale`` / ``--width``); ignored with ``window``.
        window: ``(x0, y0, zoom, out_width, out_height)``: draw that window of the unit square instead
            (see :func:`decode_window`).
        max_pixels: the most output pixels to draw (``--max-pixels``).
        max_gaussians: the most Gaussians the file may hold, checked from its header (``--max-gaussians``;
            None: the default that follows the stored and output sizes, ``DecodeBudget``).
        max_work: the most work to draw: Gaussian-tile intersections, an upper bound from the decoded
            Gaussians, times the blend's weight (``--max-work``; None: the default that follows the output).
        band_bytes, band_rows: the band plan (see ``lgi_dictco.gauss.DecodeCost.bands``).

    Raises:
        lgi_dictco.LgiFormatError: a bad file. DecodeError: a request beyond a budget or not possible.
    """
    from lgi_dictco.gauss import decode_cost, decode_lgi, dequantize, read_header
    from lgi_dictco.gauss import window as window_params

    budget = _check_budgets(max_pixels, max_gaussians, max_work)
    h = read_header(data)  # the container and its header only: the count is priced before any stream
    if window is None:
        out_w, out_h = output_size(h.width, h.height, scale, width, max_pixels)
    else:
        x0, y0, zoom, out_w, out_h = window
        if not zoom > 0:
            raise DecodeError(f"`zoom` must be > 0, got {zoom}", "zoom")
        output_size(out_w, out_h, 1.0, None, max_pixels)
    most = budget.gaussian_limit(h.width * h.height, out_w * out_h)
    if h.num_gaussians > most:
        raise DecodeError(f"the file holds {h.num_gaussians} Gaussians, more than the limit of {most} for a "
                          f"{h.width}x{h.height} image drawn at {out_w}x{out_h} (`max_gaussians`; raise it to "
                          "decode this file anyway)", "max_gaussians", limit=True)
    payload = decode_lgi(data)
    source = dequantize(payload)
    params = source if window is None else window_params(source, x0, y0, zoom)
    cost = decode_cost(params, h, out_w, out_h)
    limit = budget.work_limit(out_w, out_h, h.num_gaussians)
    if cost.work > limit:
        raise DecodeError(f"drawing {out_w}x{out_h} from {h.num_gaussians} Gaussians needs up to {cost.work} units "
                          f"of work ({cost.intersections} Gaussian-tile intersections), more than the work limit "
                          f"of {limit} (`max_work`; raise it to decode this file anyway)", "max_work", limit=True)
    bands = cost.bands(band_bytes, band_rows)
    biggest = cost.band_intersections(bands)
    if biggest > RENDER_CALL_LIMIT:
        raise DecodeError(f"one band of rows needs up to {biggest} Gaussian-tile intersections; the renderer "
                          "draws at most 2^31 - 1 per call (decode at a smaller size)")
    return Plan(header=payload.header, chunk_bytes=payload.chunk_bytes, params=params, source_params=source,
                width=out_w, height=out_h, cost=cost, bands=bands, limits=(most, limit))


def renderer(device: str = "cpu", backend: str = "auto") -> str:
    """Which renderer draws a decode: ``"native"`` (lgi_gsplat2d.native, no torch) or ``"torch"``.

    ``backend="native"`` asks for the torch-free library (an error where it cannot load); ``"auto"`` on
    the CPU takes it where it loads (prebuilt, cached or built now) and torch's kernels otherwise; any
    other backend, or a GPU, is torch's.
    """
    if backend == "native":
        if device != "cpu":
            raise DecodeError(f"the native renderer draws on the CPU, not on {device}", "device")
        from lgi_gsplat2d import native

        try:
            native.library_origin()
        except native.BackendUnavailable as exc:
            raise DecodeError(f"the native renderer is unavailable: {exc}", "backend") from None
        return "native"
    if backend == "auto" and device == "cpu":
        from lgi_gsplat2d import native

        return "native" if native.available() else "torch"
    return "torch"


def _native_bands(plan: Plan):
    """Yield (y0, [C, rows, W] numpy float32 in [0, 1]) for the plan's bands, drawn without torch."""
    import numpy as np

    from lgi_gsplat2d import native

    h, p = plan.header, plan.params
    for y0, y1 in plan.bands:
        if p["means"].shape[0] == 0:
            yield y0, np.zeros((h.channels, y1 - y0, plan.width), np.float32)
            continue
        try:
            band = native.render_band(p["means"], p["scales"], p["rotations"], p["colors"], plan.height,
                                      plan.width, y0, y1 - y0, mode=h.render_mode, k=h.topk)
        except native.RenderLimitError as exc:
            raise DecodeError(f"the renderer refused: {exc}") from None
        # In place: the band is the renderer's fresh buffer. [C, rows, W] is a view of it (no copy).
        yield y0, np.clip(band, 0.0, 1.0, out=band).transpose(2, 0, 1)


def _bands(plan: Plan, device: str, backend: str):
    """Yield (y0, [C, rows, W] in [0, 1]) for the plan's bands; renderer limits as DecodeError."""
    if renderer(device, backend) == "native":
        yield from _native_bands(plan)
    else:
        yield from _torch_bands(plan, device, backend)


def _torch_bands(plan: Plan, device: str, backend: str):
    """:func:`_bands` through lgi_gsplat2d's torch functions: [C, rows, W] tensors."""
    import lgi_gsplat2d
    from lgi_dictco.gauss import render, render_bands

    h = plan.header
    try:
        if len(plan.bands) == 1:  # the ordinary decode: one call, exactly as before bands existed
            yield 0, render(plan.params, h, plan.width, plan.height, rasterize=lgi_gsplat2d.render, device=device,
                            backend=backend)
            return
        yield from render_bands(plan.params, h, plan.width, plan.height, plan.bands,
                                project=lgi_gsplat2d.project_gaussians_2d_scale_rot,
                                row_spans=lgi_gsplat2d.row_spans, rasterize_rows=lgi_gsplat2d.rasterize_rows,
                                device=device, backend=backend)
    except lgi_gsplat2d.RenderLimitError as exc:
        raise DecodeError(f"the renderer refused: {exc}") from None


def render_plan(plan: Plan, device: str = "cpu", backend: str = "auto"):
    """[C, H, W] float32 torch tensor in [0, 1] of a plan, assembled from its bands (drawn by
    :func:`renderer`'s choice; :func:`write_png` needs no torch at all)."""
    import numpy as np
    import torch

    def tensor(band):
        # A strided view of the native renderer's [rows, W, C] buffer, as the torch renderer's permuted
        # output is: no copy.
        return torch.from_numpy(band) if isinstance(band, np.ndarray) else band

    if len(plan.bands) == 1:
        return tensor(next(_bands(plan, device, backend))[1])
    image = torch.empty(plan.header.channels, plan.height, plan.width, device=device)
    for y0, band in _bands(plan, device, backend):
        image[:, y0:y0 + band.shape[1]] = tensor(band)
    return image


def render_uint8(plan: Plan, device: str = "cpu", backend: str = "auto"):
    """(H, W, C) uint8 numpy array of a plan, assembled band by band (no torch with the native renderer;
    memory: the 8-bit image and one band)."""
    import numpy as np

    image = np.empty((plan.height, plan.width, plan.header.channels), np.uint8)
    for y0, band in _bands(plan, device, backend):
        image[y0:y0 + band.shape[1]] = to_uint8(band)
    return image


def decode(data: bytes, scale: float | None = None, width: int | None = None, device: str = "cpu",
           backend: str = "auto", *, max_pixels: int = MAX_OUTPUT_PIXELS, max_gaussians: int | None = None,
           max_work: int | None = None) -> Decoded:
    """Bytes → image. Raises lgi_dictco.LgiFormatError for a bad file, DecodeError for a bad request."""
    plan = prepare(data, scale, width, max_pixels=max_pixels, max_gaussians=max_gaussians, max_work=max_work)
    return Decoded(image=render_plan(plan, device, backend), header=plan.header, chunk_bytes=plan.chunk_bytes)


def decode_window(data: bytes, x0: float, y0: float, zoom: float, width: int, height: int, device: str = "cpu",
                  backend: str = "auto", *, max_pixels: int = MAX_OUTPUT_PIXELS, max_gaussians: int | None = None,
                  max_work: int | None = None) -> Decoded:
    """Render one window of a ``.lgi`` file at ``width`` x ``height``: the part of the image whose unit-square
    coordinates are [x0, x0 + 1/zoom] x [y0, y0 + 1/zoom], as a crop of the image decoded at the scale
    ``zoom * width / stored width`` would show it, without rendering the rest.

    ``width / height`` should keep the stored aspect ratio: the window is the same fraction of both axes, so
    the Gaussians' shapes map to the view by one uniform scale. Raises as :func:`decode`.
    """
    plan = prepare(data, window=(x0, y0, zoom, width, height), max_pixels=max_pixels, max_gaussians=max_gaussians,
                   max_work=max_work)
    return Decoded(image=render_plan(plan, device, backend), header=plan.header, chunk_bytes=plan.chunk_bytes,
                   params=plan.source_params)


def info_report(data: bytes) -> dict:
    """What `lgi info` shows of a ``.lgi`` file (less the file name), and what decoding it at its stored size
    would cost against the default budget. A file over the budget's Gaussian count is described from its
    header alone (``groups`` and ``classes.counts`` None): its streams are not decoded, as a decode would not.
    Raises lgi_dictco.LgiFormatError."""
    import numpy as np

    from lgi_dictco import LgiFormatError
    from lgi_dictco.container import chunk_sizes
    from lgi_dictco.gauss import MAGIC, decode_cost, decode_lgi, dequantize, read_header

    h = read_header(data)
    budget = DecodeBudget()
    px = h.width * h.height
    most = budget.gaussian_limit(px, px)
    report = {"bytes": len(data), "bpp": len(data) * 8 / px, "width": h.width, "height": h.height,
              "channels": h.channels, "color_space": h.color_space, "render_mode": h.render_mode, "topk": h.topk,
              "gaussians": h.num_gaussians, "position_bits": list(h.pos_bits),
              "classes": {"position_drop": list(h.class_drop), "counts": None}, "groups": None,
              "chunks": dict(chunk_sizes(data, MAGIC)), "bits_per_gaussian": len(data) * 8 / max(1, h.num_gaussians)}
    decode_at_1 = {"gaussian_limit": most, "work": None, "intersections": None, "work_limit": None, "bands": None,
                   "memory_bytes": None, "error": None}
    report["decode"] = decode_at_1
    if h.num_gaussians > most:
        decode_at_1["error"] = (f"the file holds {h.num_gaussians} Gaussians, more than the default limit of "
                                f"{most} (`max_gaussians`)")
        return report
    p = decode_lgi(data)  # the container and streams: `lgi info` reports files whose values would not decode
    groups = {}
    for name, g in (("shape", p.shape), ("color", p.color)):
        k = g.codebook.shape[0]
        groups[name] = {"codebook": k, "own_values": int(g.scalars.shape[0]), "lo": g.lo.tolist(),
                        "step": g.step.tolist(), "levels": g.levels2d.tolist(), "class_exp": g.exps.tolist()}
    report["groups"] = groups
    report["classes"]["counts"] = np.bincount(p.class_ids(), minlength=h.num_classes).tolist()
    report["chunks"] = p.chunk_bytes
    try:
        cost = decode_cost(dequantize(p), h, h.width, h.height)
    except LgiFormatError as exc:
        decode_at_1["error"] = str(exc)
        return report
    limit = budget.work_limit(h.width, h.height, h.num_gaussians)
    decode_at_1.update(work=cost.work, intersections=cost.intersections, work_limit=limit,
                       bands=len(cost.bands()), memory_bytes=cost.memory_bytes(cost.bands(), 0))
    if cost.work > limit:
        decode_at_1["error"] = f"needs {cost.work} units of work, more than the default limit of {limit} (`max_work`)"
    return report


def to_png_bytes(image) -> bytes:
    """[C, H, W] in [0, 1] → PNG bytes (8-bit; one channel → grayscale)."""
    import io

    from PIL import Image

    arr = to_uint8(image)
    pil = Image.fromarray(arr[:, :, 0]) if arr.shape[2] == 1 else Image.fromarray(arr)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


_PNG_COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # gray, gray + alpha, RGB, RGBA: as Pillow writes them


def _png_chunk(tag: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))


class _PngRows:
    """A PNG written row by row (8-bit, no interlace): rows go through zlib as they come, so neither the
    whole image nor its compressed bytes are ever held. Each row is filtered with Sub or Up, whichever has
    the smaller sum of absolute (signed) bytes, the heuristic of libpng."""

    def __init__(self, f, width: int, height: int, channels: int, level: int = 6):
        import numpy as np

        self.f, self.channels, self.rows_left = f, channels, height
        self.prev = np.zeros(width * channels, np.uint8)
        self.z = zlib.compressobj(level)
        f.write(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(
            ">IIBBBBB", width, height, 8, _PNG_COLOUR_TYPES[channels], 0, 0, 0)))

    def write(self, rows) -> None:
        """``rows`` [h, W, C] uint8, the next h rows."""
        import numpy as np

        raw = np.ascontiguousarray(rows).reshape(rows.shape[0], -1)
        prev = np.concatenate([self.prev[None], raw[:-1]])
        up = raw - prev
        sub = raw.copy()
        sub[:, self.channels:] -= raw[:, :-self.channels]

        def cost(x):
            return np.abs(x.view(np.int8).astype(np.int16)).sum(1)

        use_sub = cost(sub) <= cost(up)
        out = np.empty((raw.shape[0], raw.shape[1] + 1), np.uint8)
        out[:, 0] = np.where(use_sub, 1, 2)
        out[:, 1:] = np.where(use_sub[:, None], sub, up)
        self._idat(self.z.compress(out.tobytes()))
        self.prev = raw[-1].copy()
        self.rows_left -= raw.shape[0]

    def _idat(self, body: bytes) -> None:
        if body:
            self.f.write(_png_chunk(b"IDAT", body))

    def close(self) -> None:
        if self.rows_left != 0:
            raise RuntimeError(f"PNG writer: {self.rows_left} rows missing")
        self._idat(self.z.flush())
        self.f.write(_png_chunk(b"IEND", b""))


def write_png(plan: Plan, f, device: str = "cpu", backend: str = "auto") -> None:
    """Render a plan into the open binary file ``f`` as a PNG. One band: Pillow's PNG of the whole image,
    as always; several: the bands streamed into the PNG as they are drawn (memory: one band). On the CPU
    the torch-free renderer draws it where it loads (:func:`renderer`)."""
    if len(plan.bands) == 1:
        f.write(to_png_bytes(next(_bands(plan, device, backend))[1]))
        return
    png = _PngRows(f, plan.width, plan.height, plan.header.channels)
    for _, band in _bands(plan, device, backend):
        png.write(to_uint8(band))
    png.close()
