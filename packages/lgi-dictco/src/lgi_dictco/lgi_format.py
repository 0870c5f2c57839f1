"""Backwards-compatible home of the ``.lgi`` codec, which now lives in :mod:`lgi_dictco.gauss`.

New code imports from :mod:`lgi_dictco.gauss` (or its modules ``format``, ``quant``, ``decoder``).
"""

from lgi_dictco.gauss.decoder import dequantize
from lgi_dictco.gauss.format import (
    COLOR_SPACES,
    GROUPS,
    MAGIC,
    MAX_CHANNELS,
    MAX_CLASS_EXP,
    MAX_CLASSES,
    MAX_GAUSSIANS,
    MAX_LEVELS,
    MAX_PIXELS,
    MAX_POS_BITS,
    MAX_SIDE,
    MAX_TOPK,
    RENDER_MODES,
    VERSION,
    GroupCoding,
    LgiHeader,
    LgiPayload,
    decode_lgi,
    encode_lgi,
    morton_decode,
    morton_encode,
    morton_order,
)
from lgi_dictco.gauss.quant import (
    OPPONENT,
    class_multiplier,
    params_to_shape_features,
    shape_features_to_params,
)

__all__ = [
    "COLOR_SPACES", "GROUPS", "MAGIC", "MAX_CHANNELS", "MAX_CLASS_EXP", "MAX_CLASSES", "MAX_GAUSSIANS",
    "MAX_LEVELS", "MAX_PIXELS", "MAX_POS_BITS", "MAX_SIDE", "MAX_TOPK", "OPPONENT", "RENDER_MODES", "VERSION",
    "GroupCoding", "LgiHeader", "LgiPayload", "class_multiplier", "decode_lgi", "dequantize", "encode_lgi",
    "morton_decode", "morton_encode", "morton_order", "params_to_shape_features", "shape_features_to_params",
]
