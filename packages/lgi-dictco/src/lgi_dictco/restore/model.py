"""The restoration network: a small residual CNN that removes a codec's artefacts in one pass.

``RestoreNet`` predicts a correction that is added to its input (the decoded image, RGB in [0, 1]): a 3×3
convolution into ``width`` channels, ``blocks`` residual blocks of two 3×3 convolutions around a ReLU, a 3×3
convolution back to RGB. A *conditioned* network (``RestoreConfig.conditioned``) also reads the input's level, one
number a decoder knows about how degraded its image is (:func:`level_of`: the LGI file's bits per pixel, the
JPEG quality), as one more input plane of that constant value. Every layer is a 3×3 convolution, so an output pixel depends only on the input within
:attr:`RestoreNet.radius` pixels: :func:`restore` draws any image in tiles with that much margin and the tiles
equal the whole-image result (to float rounding), in memory bounded by the tile, whatever the image size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

#: The luminance quantization table of the JPEG standard (ITU-T T.81, Annex K), in natural order: the
#: table libjpeg scales by its quality setting.
_JPEG_LUMA = (16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
              14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
              18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
              49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99)


def jpeg_table(quality: int) -> list[int]:
    """The luminance table libjpeg (and so Pillow) writes at ``quality`` 1..100, natural order."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return [min(255, max(1, (v * scale + 50) // 100)) for v in _JPEG_LUMA]


def jpeg_quality(luma_table) -> int:
    """The quality (1..100) whose libjpeg luminance table is nearest ``luma_table`` (64 values, natural order,
    as Pillow's ``Image.quantization[0]``): the JPEG level a decoder can read from the file itself. Exact for
    files libjpeg wrote; the nearest match for other encoders' tables."""
    table = [int(v) for v in luma_table]
    if len(table) != 64:
        raise ValueError(f"a JPEG quantization table has 64 values, not {len(table)}")
    return min(range(1, 101), key=lambda q: (sum(abs(a - b) for a, b in zip(jpeg_table(q), table)), -q))


def level_of(source: str, value: float) -> float:
    """The conditioning level of an image decoded from ``source``: log2 of the LGI file's bits per pixel
    (0.25 bpp → −2, 1 bpp → 0), or the JPEG quality / 100. Both grow with the image's quality."""
    if source == "lgi":
        if not value > 0:
            raise ValueError(f"an LGI level needs the file's bits per pixel > 0, got {value}")
        return math.log2(value)
    if source == "jpeg":
        if not 1 <= value <= 100:
            raise ValueError(f"a JPEG level needs a quality in 1..100, got {value}")
        return value / 100.0
    from lgi_dictco.restore import SOURCES

    raise ValueError(f"no level for source {source!r}; sources: {', '.join(SOURCES)}")


@dataclass(frozen=True)
class RestoreConfig:
    """Sizes of a :class:`RestoreNet`."""

    width: int = 32
    blocks: int = 5
    conditioned: bool = False  # reads a level (level_of) as a fourth input plane

    def to_dict(self) -> dict:
        return asdict(self)


class _Block(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.a = nn.Conv2d(width, width, 3, padding=1)
        self.b = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.b(torch.relu(self.a(x)))


class RestoreNet(nn.Module):
    """Decoded image [B, 3, H, W] in [0, 1] → restored image, same shape (not clamped)."""

    def __init__(self, config: RestoreConfig = RestoreConfig()):
        super().__init__()
        self.config = config
        w = config.width
        self.head = nn.Conv2d(3 + int(config.conditioned), w, 3, padding=1)
        self.body = nn.Sequential(*[_Block(w) for _ in range(config.blocks)])
        self.tail = nn.Conv2d(w, 3, 3, padding=1)
        nn.init.zeros_(self.tail.weight)  # starts as the identity: training only adds what helps
        nn.init.zeros_(self.tail.bias)

    @property
    def radius(self) -> int:
        """Pixels of input on each side that an output pixel depends on (one per 3×3 convolution)."""
        return 2 + 2 * self.config.blocks

    def forward(self, x: torch.Tensor, level: torch.Tensor | float | None = None) -> torch.Tensor:
        """``level``: a conditioned network's level per image ([B] or one number); None for another."""
        return x + self.tail(self.body(torch.relu(self.head(self._input(x, level)))))

    def _input(self, x: torch.Tensor, level: torch.Tensor | float | None) -> torch.Tensor:
        if not self.config.conditioned:
            if level is not None:
                raise ValueError("this restoration network is not conditioned: it takes no level")
            return x
        if level is None:
            raise ValueError("this restoration network is conditioned: give the input's level (level_of)")
        b, _, h, w = x.shape
        lv = torch.as_tensor(level, dtype=x.dtype, device=x.device).reshape(-1)
        if lv.numel() not in (1, b):
            raise ValueError(f"{lv.numel()} levels for a batch of {b}")
        return torch.cat([x, lv.expand(b).view(b, 1, 1, 1).expand(b, 1, h, w)], 1)


#: Output pixels per tile side in :func:`restore`; each tile reads ``radius`` more on every side.
TILE = 256


def restore(model: RestoreNet, image: torch.Tensor, tile: int = TILE,
            progress: Callable[[int, int], None] | None = None, level: float | None = None) -> torch.Tensor:
    """Restore ``image`` [3, H, W] in [0, 1] tile by tile; returns [3, H, W] in [0, 1].

    Each ``tile`` × ``tile`` block of the output is computed from its block of the input plus ``model.radius``
    pixels around it (clipped at the image's edges, where the network pads with zeros as it does on a whole
    image), so the result is the whole-image result wherever the convolutions round alike, and memory is one
    tile's activations (about ``width`` × (tile + 2·radius)² floats) for any image size.

    Args:
        progress: called with (tiles done, tiles in all) after each tile.
        level: the input's level (:func:`level_of`), for a conditioned network.
    """
    if tile < 1:
        raise ValueError(f"tile must be >= 1, got {tile}")
    _, h, w = image.shape
    r = model.radius
    out = torch.empty_like(image)
    rows, cols = range(0, h, tile), range(0, w, tile)
    total, done = len(rows) * len(cols), 0
    with torch.no_grad():
        for y0 in rows:
            for x0 in cols:
                y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
                ya, xa = max(y0 - r, 0), max(x0 - r, 0)
                yb, xb = min(y1 + r, h), min(x1 + r, w)
                part = model(image[None, :, ya:yb, xa:xb], level)[0]
                out[:, y0:y1, x0:x1] = part[:, y0 - ya:y1 - ya, x0 - xa:x1 - xa].clamp(0, 1)
                done += 1
                if progress is not None:
                    progress(done, total)
    return out
