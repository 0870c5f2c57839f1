"""The classical peers at a given size (Pillow's JPEG, WebP, AVIF) and the 8-bit RGB metrics LGI is judged by.

Shared by `lgi demo`, `lgi batch eval` and ``benchmarks/rd.py``, so that a peer means the same codec
with the same settings everywhere. Honesty rules (../shared/CODEC_NOTES.md): bpp counts every byte of
the file; PSNR is on 8-bit RGB of the decoded image; a peer "at the same size" is its highest quality
whose file is no larger than LGI's.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Peer:
    format: str                      # Pillow's format name
    qualities: tuple[int, int]       # the quality range searched, lowest first
    options: dict = field(default_factory=dict)


#: The peers and their settings (as benchmarks/rd.py measures them): Pillow defaults for JPEG (4:2:0),
#: WebP at its slowest, best method, AVIF at Pillow's native default speed.
PEERS = {"jpeg": Peer("JPEG", (1, 95)), "webp": Peer("WEBP", (0, 100), {"method": 6}),
         "avif": Peer("AVIF", (0, 100), {"speed": 6})}


def encode_peer(image_u8, codec: str, quality: int) -> bytes:
    """``image_u8`` [H, W, 3] uint8 through a peer at one quality."""
    from PIL import Image

    peer = PEERS[codec]
    buf = io.BytesIO()
    Image.fromarray(image_u8).save(buf, format=peer.format, quality=quality, **peer.options)
    return buf.getvalue()


def peer_at_most(image_u8, max_bytes: int, codec: str) -> tuple[bytes, int]:
    """The highest quality of ``codec`` whose file is no larger than ``max_bytes``: (bytes, quality).

    Sizes grow with quality, so this is a bisection (about 7 encodes). When even the lowest quality is
    larger, that file is returned: the caller sees its real size.
    """
    lo, hi = PEERS[codec].qualities
    lowest = lo
    best: tuple[bytes, int] | None = None
    while lo <= hi:
        q = (lo + hi) // 2
        data = encode_peer(image_u8, codec, q)
        if len(data) <= max_bytes:
            best, lo = (data, q), q + 1
        else:
            hi = q - 1
    return best if best is not None else (encode_peer(image_u8, codec, lowest), lowest)


def decode_u8(data: bytes):
    """Any file Pillow reads → [H, W, 3] uint8 RGB."""
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def rgb_metrics(decoded, ref) -> tuple[float, float]:
    """(PSNR in dB, MS-SSIM) of [H, W, 3] uint8 ``decoded`` against ``ref``.

    MS-SSIM needs more than 160 px per side (5 scales): smaller images get NaN. A perfect copy gets a
    PSNR of 99 dB (a finite number for tables and means).
    """
    import numpy as np
    import torch

    mse = float(((decoded.astype(np.float64) - ref.astype(np.float64)) ** 2).mean())
    psnr = 10 * math.log10(255.0 ** 2 / mse) if mse > 0 else 99.0
    if min(ref.shape[:2]) <= 160:
        return psnr, float("nan")
    from pytorch_msssim import ms_ssim

    a = torch.from_numpy(np.array(decoded)).permute(2, 0, 1)[None].float()
    b = torch.from_numpy(np.array(ref)).permute(2, 0, 1)[None].float()
    return psnr, float(ms_ssim(a, b, data_range=255.0))
