"""The encoder (v3): one straight pipeline of stages, each a module of this package.

    from lgi_train.encode import Options, encode
    result = encode(target, Options(bpp=0.5))        # target: [C, H, W] float in [0, 1]
    open("x.lgi", "wb").write(result.data)

initialise → fit → select → quantize → fine-tune → entropy-code (:mod:`.pipeline`). What the user
asks for is :class:`Options`; how the effort is spent is a frozen :class:`Tuning` per effort level
(:data:`TUNINGS`). The encoder before this one is kept as a baseline in
:mod:`lgi_train.compress.encoder` ("v2" in the benchmarks).
"""

from lgi_train.encode.options import QUALITY_BPP, Options
from lgi_train.encode.pipeline import STAGES, EncodeResult, encode
from lgi_train.encode.select import RateError
from lgi_train.encode.tuning import TUNINGS, Phase, Tuning

__all__ = ["QUALITY_BPP", "STAGES", "TUNINGS", "EncodeResult", "Options", "Phase", "RateError", "Tuning", "encode"]
