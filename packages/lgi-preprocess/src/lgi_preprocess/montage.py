"""A one-PNG overview of an image and its maps, drawn with Pillow and numpy (no matplotlib).

Continuous maps use a viridis-like colour ramp (dark purple = 0, yellow = 1), the placement map is shown
relative to its maximum, segments as yellow boundaries over the image, the skeleton in white on black.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from lgi_preprocess._io import atomic_write

#: Anchors of the colour ramp (viridis at 0, 0.25, 0.5, 0.75, 1).
_RAMP = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=np.float64)
_BINARY = ("skeleton",)
_PANEL_WIDTH = 256
_LABEL_HEIGHT = 18
_GAP = 4
_COLUMNS = 3


def colorize(values: np.ndarray) -> np.ndarray:
    """[H, W] values in [0, 1] → [H, W, 3] uint8 through the colour ramp."""
    v = np.clip(np.nan_to_num(np.asarray(values, dtype=np.float64)), 0.0, 1.0) * (len(_RAMP) - 1)
    i0 = np.minimum(np.floor(v).astype(np.int64), len(_RAMP) - 2)
    t = (v - i0)[..., None]
    return np.round(_RAMP[i0] * (1.0 - t) + _RAMP[i0 + 1] * t).astype(np.uint8)


def _boundaries(segments: np.ndarray) -> np.ndarray:
    edge = np.zeros(segments.shape, dtype=bool)
    edge[:, :-1] |= segments[:, :-1] != segments[:, 1:]
    edge[:-1, :] |= segments[:-1, :] != segments[1:, :]
    return edge


def _panel(name: str, rgb: np.ndarray, maps: Mapping[str, np.ndarray], size: tuple[int, int]):
    from PIL import Image

    if name == "image":
        return Image.fromarray(np.round(rgb * 255).astype(np.uint8)).resize(size, Image.Resampling.BOX)
    values = np.asarray(maps[name])
    if name == "segments" or name in _BINARY:
        mask = _boundaries(values) if name == "segments" else values > 0
        # Box-average, then any coverage counts: one-pixel lines survive the downscaling.
        covered = np.asarray(Image.fromarray(mask.astype(np.float32)).resize(size, Image.Resampling.BOX)) > 0
        if name == "segments":
            base = np.asarray(Image.fromarray(np.round(rgb * 255).astype(np.uint8)).resize(size, Image.Resampling.BOX))
            out = base.copy()
            out[covered] = (255, 220, 0)
        else:
            out = np.where(covered[..., None], np.uint8(255), np.uint8(0)).repeat(3, axis=2)
        return Image.fromarray(out)
    if name == "placement":
        top = float(values.max())
        values = values / top if top > 0 else values
    small = np.asarray(Image.fromarray(values.astype(np.float32)).resize(size, Image.Resampling.BOX))
    return Image.fromarray(colorize(small))


def make_montage(rgb: np.ndarray, maps: Mapping[str, np.ndarray], title: str | None = None,
                 panel_width: int = _PANEL_WIDTH):
    """Compose the image and every map into one labelled grid.

    Args:
        rgb: [H, W, 3] float in [0, 1].
        maps: name → [H, W] map (``segments`` as labels, the rest in [0, 1]).
        title: written on the image panel (e.g. the file name).
        panel_width: width of each panel in pixels (height follows the aspect ratio).

    Returns:
        A ``PIL.Image.Image`` (RGB).
    """
    from PIL import Image, ImageDraw, ImageFont

    from lgi_preprocess.maps import MAP_NAMES

    H, W = rgb.shape[:2]
    pw = max(16, min(int(panel_width), W))
    ph = max(1, round(H * pw / W))
    names = ["image"] + [m for m in MAP_NAMES if m in maps]
    cols = min(_COLUMNS, len(names))
    rows = -(-len(names) // cols)
    cell_h = ph + _LABEL_HEIGHT
    canvas = Image.new("RGB", (cols * pw + (cols + 1) * _GAP, rows * cell_h + (rows + 1) * _GAP), (32, 32, 32))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for k, name in enumerate(names):
        x = _GAP + (k % cols) * (pw + _GAP)
        y = _GAP + (k // cols) * (cell_h + _GAP)
        label = f"{name}: {title}" if name == "image" and title else name
        draw.text((x + 2, y + 3), label, fill=(235, 235, 235), font=font)
        canvas.paste(_panel(name, rgb, maps, (pw, ph)), (x, y + _LABEL_HEIGHT))
    return canvas


def save_montage(path: str | os.PathLike, rgb: np.ndarray, maps: Mapping[str, np.ndarray],
                 title: str | None = None) -> Path:
    """Write :func:`make_montage` as a PNG, atomically; returns the path."""
    buf = io.BytesIO()
    make_montage(rgb, maps, title).save(buf, format="PNG")
    return atomic_write(path, lambda f: f.write(buf.getvalue()))
