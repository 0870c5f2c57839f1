"""Stage 6: entropy coding, and the one correction a file over its budget gets.

The fine-tuned set is written as a ``.lgi`` file (:func:`lgi_dictco.gauss.format.encode_lgi`: Morton
order, rANS streams). A file over the budget (the fine-tuning steers its size to the goal, under the
budget by a margin, but at low rates it can land a little over) drops its least important Gaussians
(by the selection's importance) in proportion to the excess and is coded again, until it fits. Nothing
else changes: the kept Gaussians stay on their grids, in their precision classes, with their fine-tuned values
(:meth:`~lgi_train.compress.codec.QuantizedSet.keep_only`). Until 2026-12-08 the kept set was
re-quantized and fine-tuned for 20 steps: as good where it was measured and 5-10 × slower
(docs/encoder.md); fine-tuning the kept set without re-quantizing it was worse than no steps at all
(a fresh Adam's first steps move every value by a full learning rate).
"""

from __future__ import annotations

import torch

from lgi_train.compress.codec import QuantizedSet
from lgi_train.encode.select import MIN_GAUSSIANS, RateError


def entropy_code(qset: QuantizedSet) -> bytes:
    from lgi_dictco.gauss.format import encode_lgi

    return encode_lgi(qset.to_payload())


def fit_budget(qset: QuantizedSet, data: bytes, budget: int | None,
               importance: torch.Tensor) -> tuple[QuantizedSet, bytes, int]:
    """(the set, its file, the number of trims): ``qset`` and ``data`` unchanged when within ``budget``,
    else the set without its least important Gaussians by ``importance`` ([N], the selection's, in the
    set's order: ranking by a fresh sensitivity pass of the fine-tuned set instead gave kodim23 37.214 /
    30.799 dB at 0.5 / 0.125 bpp against 37.215 / 30.813, and costs ~5 s on a 2 MP photo)."""
    trims, kept, order = 0, qset, None
    while budget is not None and len(data) > budget:
        n_now = kept.num_gaussians
        n_next = max(MIN_GAUSSIANS, int(n_now * (budget / len(data)) * 0.995))
        if n_next >= n_now:
            raise RateError(f"cannot reach {budget} bytes: even {n_now} Gaussians need {len(data)} bytes")
        if order is None:
            order = torch.argsort(importance.cpu(), descending=True, stable=True)
        kept = qset.keep_only(torch.sort(order[:n_next]).values)
        data = entropy_code(kept)
        trims += 1
    return kept, data, trims
