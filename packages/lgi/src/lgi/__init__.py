"""LGI, a Gaussian image codec: an image as a few thousand 2D Gaussians, in a small ``.lgi`` file.

    import lgi

    data = lgi.encode("photo.png", bpp=0.5)     # bytes; also a PIL image or an (H, W[, C]) array
    pixels = lgi.decode(data, scale=2)          # (H, W, C) uint8, at any size
    lgi.info(data).gaussians

Importing ``lgi`` registers the Pillow plugin (:mod:`lgi.pillow`): ``Image.open("x.lgi")``,
``im.save("x.lgi", bpp=0.5)``. Errors are :class:`LgiError` subclasses (:mod:`lgi.errors`). Importing
it loads neither torch nor the kernels; decoding on a CPU needs neither.
"""

__version__ = "0.1.0"

from lgi.api import SAMPLE, Encoded, Info, decode, encode, encode_details, info
from lgi.errors import (
    FileFormatError,
    ImageInputError,
    LgiError,
    LimitError,
    OptionError,
    RateTargetError,
    RendererError,
)

try:
    from lgi import pillow
except ImportError:  # Pillow is a dependency; only a bare install (the CLI's listing, click alone) lacks it
    pillow = None
else:
    pillow.register()

__all__ = ["SAMPLE", "Encoded", "FileFormatError", "ImageInputError", "Info", "LgiError", "LimitError", "OptionError",
           "RateTargetError", "RendererError", "decode", "encode", "encode_details", "info", "pillow"]
