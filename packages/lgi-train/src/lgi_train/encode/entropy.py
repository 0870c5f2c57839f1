"""Stage 6: entropy coding, and the one correction a file over its budget gets.

The fine-tuned set is written as a ``.lgi`` file (:func:`lgi_dictco.gauss.format.encode_lgi`: Morton
order, rANS streams). A file over the budget (rare: the fine-tuning steers its size to the goal,
under the budget by a margin) drops its least important Gaussians in proportion to the excess,
is re-quantized and fine-tuned briefly at full size, and coded again, until it fits.
"""

from __future__ import annotations

import torch

from lgi_train.compress.codec import CodecSettings, QuantizedSet
from lgi_train.compress.sensitivity import calc_sensitivity
from lgi_train.encode.finetune import finetune
from lgi_train.encode.select import MIN_GAUSSIANS, RateError, subset
from lgi_train.encode.tuning import Phase
from lgi_train.model import GaussianModel

#: The short fine-tuning of a trimmed set (full size).
TRIM_PLAN = (Phase("trim", 20, lr=0.5, lr_end=0.0),)


def entropy_code(qset: QuantizedSet) -> bytes:
    from lgi_dictco.gauss.format import encode_lgi

    return encode_lgi(qset.to_payload())


def as_model(qset: QuantizedSet) -> GaussianModel:
    """The Gaussians of ``qset`` as they are coded, as a float model."""
    from lgi_dictco.gauss.torch_quant import features_to_shape

    with torch.no_grad():
        scales, rot = features_to_shape(qset.shape.values())
        return GaussianModel(qset.positions(), scales, rot, qset.rgb_colors(), render_mode=qset.render_mode,
                             topk=qset.topk, backend=qset.backend)


def fit_budget(qset: QuantizedSet, data: bytes, budget: int | None, codec: CodecSettings, target: torch.Tensor,
               lrs: dict[str, float], price: float, generator: torch.Generator) -> tuple[QuantizedSet, bytes, int]:
    """(the set, its file, the number of trims): ``qset`` and ``data`` unchanged when within ``budget``."""
    trims = 0
    while budget is not None and len(data) > budget:
        n_now = qset.xy.shape[0]
        n_next = max(MIN_GAUSSIANS, int(n_now * (budget / len(data)) * 0.995))
        if n_next >= n_now:
            raise RateError(f"cannot reach {budget} bytes: even {n_now} Gaussians need {len(data)} bytes")
        model = as_model(qset)
        h, w = qset.height, qset.width
        sens = calc_sensitivity(model, h, w)
        order = torch.argsort(sens.importance.cpu(), descending=True, stable=True)
        # the kept set's classes from its own sensitivity pass: reusing the ranking pass's curvature (one pass
        # instead of two) cost kodim23 1.08 dB in a trim (docs/encoder.md)
        qset = QuantizedSet(subset(model, order, n_next), h, w, codec,
                            generator=generator).to(target.device)
        finetune(qset, target, TRIM_PLAN, lrs, price)
        data = entropy_code(qset)
        trims += 1
    return qset, data, trims
