"""The one 8-bit conversion of LGI: what a decoder writes, what every PSNR is measured on.

It lives in lgi-dictco, the lowest package that both the decoders (``lgi.decoding``, the DCAE's
``dcae.io``) and the encoder's measurements (``lgi_train``) depend on. numpy only; a torch tensor is
taken too (converted on the CPU), without importing torch here.
"""

from __future__ import annotations

import numpy as np

__all__ = ["to_uint8"]


def to_uint8(image) -> np.ndarray:
    """[C, H, W] in [0, 1] (a numpy array or a torch tensor) → [H, W, C] uint8 numpy: clipped to [0, 1],
    times 255, rounded half to even, in float32 (the same bits for both renderers and for torch's
    ``(x.clamp(0, 1) * 255).round()``)."""
    if not isinstance(image, np.ndarray):  # a torch tensor
        image = image.detach().float().clamp(0, 1).cpu().numpy()
    arr = np.rint(np.clip(image, 0, 1, dtype=np.float32) * np.float32(255)).astype(np.uint8)
    return arr.transpose(1, 2, 0)
