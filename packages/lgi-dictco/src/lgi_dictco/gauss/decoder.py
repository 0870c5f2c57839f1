"""The one ``.lgi`` decoder: bytes → float32 Gaussian parameters → an image.

``lgi decode``, ``lgi app`` and the encoder (which renders its final image from its own bytes) all go
through :func:`decode` and :func:`render`, so they show the same pixels on the same device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lgi_dictco.errors import LgiFormatError
from lgi_dictco.gauss.format import LgiHeader, LgiPayload, decode_lgi
from lgi_dictco.gauss.quant import cell_centres, opponent_to_rgb, shape_features_to_params


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
        LgiFormatError: the values decode to non-finite or zero scales or non-finite colours.
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
