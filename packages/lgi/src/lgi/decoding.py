"""Decoding a ``.lgi`` file: needs only lgi-dictco (bitstream) and lgi-gsplat2d (renderer)."""

from __future__ import annotations

from dataclasses import dataclass

MAX_OUTPUT_PIXELS = 1 << 28  # 268 M pixels: about 3 GB of float32 RGB while rendering


class DecodeError(ValueError):
    """The requested output cannot be produced (e.g. an absurd size); the message says why."""


@dataclass
class Decoded:
    image: object        # torch.Tensor [C, H, W] in [0, 1]
    header: object       # lgi_dictco.lgi_format.LgiHeader
    chunk_bytes: dict


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
    import torch

    from lgi_dictco.lgi_format import decode_lgi, dequantize
    from lgi_gsplat2d import render

    payload = decode_lgi(data)
    h = payload.header
    out_w, out_h = output_size(h.width, h.height, scale, width)
    params = {k: torch.from_numpy(v).to(device) for k, v in dequantize(payload).items()}
    if params["means"].shape[0] == 0:
        image = torch.zeros(h.channels, out_h, out_w, device=device)
    else:
        with torch.no_grad():
            image = render(params["means"], params["scales"], params["rotations"], params["colors"], out_h, out_w,
                           mode=h.render_mode, k=h.topk, backend=backend).permute(2, 0, 1).clamp(0, 1)
    return Decoded(image=image, header=h, chunk_bytes=payload.chunk_bytes)


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
