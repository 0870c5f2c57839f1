"""Decoding a ``.lgi`` file for the CLI and the app: needs only lgi-dictco and lgi-gsplat2d.

The decoder itself is :mod:`lgi_dictco.gauss.decoder`; this module adds the user-level requests (output
size, windows) and their errors.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_OUTPUT_PIXELS = 1 << 28  # 268 M pixels: about 3 GB of float32 RGB while rendering


class DecodeError(ValueError):
    """The requested output cannot be produced (e.g. an absurd size); the message says why."""


@dataclass
class Decoded:
    image: object        # torch.Tensor [C, H, W] in [0, 1]
    header: object       # lgi_dictco.gauss.LgiHeader
    chunk_bytes: dict
    params: dict | None = None  # the dequantized Gaussians (numpy, unit square), from decode_window


def output_size(width: int, height: int, scale: float | None, out_width: int | None) -> tuple[int, int]:
    """(W, H) of the decoded image; the aspect ratio of the stored size is kept."""
    if scale is not None and out_width is not None:
        raise DecodeError("give --scale or --width, not both")
    if out_width is not None:
        if out_width < 1:
            raise DecodeError(f"--width must be >= 1, got {out_width}")
        scale = out_width / width
    scale = 1.0 if scale is None else scale
    if not scale > 0:
        raise DecodeError(f"--scale must be > 0, got {scale}")
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    if w * h > MAX_OUTPUT_PIXELS:
        raise DecodeError(f"output {w}x{h} exceeds the decoder limit of {MAX_OUTPUT_PIXELS} pixels")
    return w, h


def decode(data: bytes, scale: float | None = None, width: int | None = None, device: str = "cpu",
           backend: str = "auto") -> Decoded:
    """Bytes → image. Raises lgi_dictco.LgiFormatError for a bad file, DecodeError for a bad request."""
    from lgi_dictco.gauss import decode_lgi, dequantize

    payload = decode_lgi(data)
    h = payload.header
    out_w, out_h = output_size(h.width, h.height, scale, width)  # refuse a bad request before dequantizing
    image = _render(dequantize(payload), h, out_w, out_h, device, backend)
    return Decoded(image=image, header=h, chunk_bytes=payload.chunk_bytes)


def decode_window(data: bytes, x0: float, y0: float, zoom: float, width: int, height: int, device: str = "cpu",
                  backend: str = "auto") -> Decoded:
    """Render one window of a ``.lgi`` file at ``width`` x ``height``: the part of the image whose unit-square
    coordinates are [x0, x0 + 1/zoom] x [y0, y0 + 1/zoom], as a crop of the image decoded at the scale
    ``zoom * width / stored width`` would show it, without rendering the rest.

    ``width / height`` should keep the stored aspect ratio: the window is the same fraction of both axes, so
    the Gaussians' shapes map to the view by one uniform scale. Raises as :func:`decode`.
    """
    from lgi_dictco.gauss import decode as decode_set
    from lgi_dictco.gauss import window

    if not zoom > 0:
        raise DecodeError(f"zoom must be > 0, got {zoom}")
    output_size(width, height, 1.0, None)
    d = decode_set(data)
    image = _render(window(d.params, x0, y0, zoom), d.header, width, height, device, backend)
    return Decoded(image=image, header=d.header, chunk_bytes=d.chunk_bytes, params=d.params)


def _render(params: dict, h, out_w: int, out_h: int, device: str, backend: str):
    """[C, out_h, out_w] in [0, 1] from dequantized unit-square parameters (numpy)."""
    from lgi_dictco.gauss import render
    from lgi_gsplat2d import render as rasterize

    return render(params, h, out_w, out_h, rasterize=rasterize, device=device, backend=backend)


def info_report(data: bytes) -> dict:
    """What `lgi info` shows of a ``.lgi`` file (less the file name). Raises lgi_dictco.LgiFormatError."""
    import numpy as np

    from lgi_dictco.gauss import decode_lgi

    p = decode_lgi(data)  # the container only: `lgi info` reports files whose values would not decode
    h = p.header
    groups = {}
    for name, g in (("shape", p.shape), ("color", p.color)):
        k = g.codebook.shape[0]
        groups[name] = {"codebook": k, "own_values": int(g.scalars.shape[0]), "lo": g.lo.tolist(),
                        "step": g.step.tolist(), "levels": g.levels2d.tolist(), "class_exp": g.exps.tolist()}
    counts = np.bincount(p.class_ids(), minlength=h.num_classes).tolist()
    return {"bytes": len(data), "bpp": len(data) * 8 / (h.width * h.height),
            "width": h.width, "height": h.height, "channels": h.channels, "color_space": h.color_space,
            "render_mode": h.render_mode, "topk": h.topk, "gaussians": h.num_gaussians,
            "position_bits": list(h.pos_bits), "classes": {"position_drop": list(h.class_drop), "counts": counts},
            "groups": groups, "chunks": p.chunk_bytes,
            "bits_per_gaussian": len(data) * 8 / max(1, h.num_gaussians)}


def to_png_bytes(image) -> bytes:
    """[C, H, W] in [0, 1] → PNG bytes (8-bit; one channel → grayscale)."""
    import io

    import numpy as np
    from PIL import Image

    arr = (image.detach().clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
    pil = Image.fromarray(arr[0]) if arr.shape[0] == 1 else Image.fromarray(arr.transpose(1, 2, 0))
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()
