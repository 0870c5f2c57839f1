"""The ``.lgi`` codec of 2D Gaussians (docs/format.md), in one place, laid out like :mod:`lgi_dictco.dcae`.

- :mod:`.format`: the container, header and chunks; quantized integers in and out.
- :mod:`.quant`: the quantization transforms in numpy (grids, shape features, opponent colour).
- :mod:`.torch_quant`: their torch twins for quantization-aware fitting (imports torch).
- :mod:`.decoder`: bytes → float32 Gaussian parameters → an image.

The public pair::

    from lgi_dictco.gauss import encode, decode

    data = encode(payload)          # LgiPayload (quantized integers) -> .lgi bytes
    decoded = decode(data)          # -> DecodedSet: .payload, .header, .params (float32, unit square)
    image = render(decoded.params, decoded.header, w, h, rasterize=lgi_gsplat2d.render)

Importing this subpackage needs numpy only; torch loads in :func:`render` and :mod:`.torch_quant`.
"""

from lgi_dictco.gauss.decoder import (
    GAUSSIANS_PER_PIXEL,
    MAX_OUTPUT_PIXELS,
    MIN_GAUSSIANS,
    WORK_PER_GAUSSIAN,
    WORK_PER_TILE,
    DecodeBudget,
    DecodeCost,
    DecodedSet,
    decode,
    decode_cost,
    dequantize,
    render,
    render_bands,
    window,
    work_weight,
)
from lgi_dictco.gauss.format import (
    COLOR_SPACES,
    MAGIC,
    RENDER_MODES,
    VERSION,
    GroupCoding,
    LgiHeader,
    LgiPayload,
    decode_lgi,
    encode_lgi,
    read_header,
)
from lgi_dictco.gauss.quant import OPPONENT

encode = encode_lgi

__all__ = [
    "COLOR_SPACES",
    "MAGIC",
    "GAUSSIANS_PER_PIXEL",
    "MAX_OUTPUT_PIXELS",
    "MIN_GAUSSIANS",
    "OPPONENT",
    "RENDER_MODES",
    "VERSION",
    "WORK_PER_GAUSSIAN",
    "WORK_PER_TILE",
    "DecodeBudget",
    "DecodeCost",
    "DecodedSet",
    "GroupCoding",
    "LgiHeader",
    "LgiPayload",
    "decode",
    "decode_cost",
    "decode_lgi",
    "dequantize",
    "encode",
    "encode_lgi",
    "read_header",
    "render",
    "render_bands",
    "window",
    "work_weight",
]
