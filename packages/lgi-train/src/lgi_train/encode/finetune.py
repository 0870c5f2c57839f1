"""Stage 5: quantization-aware fine-tuning, landing the file on its target.

The quantized set (:class:`~lgi_train.compress.codec.QuantizedSet`: positions on their fixed-point
grid, shape and colour values on their per-class grids, all with straight-through rounding) is
trained on the L2 loss plus a rate term, the differentiable estimate of its values' bits
(:mod:`lgi_train.compress.rate`) priced at λ dB per bit per pixel: a bit is given up where it buys
less than λ. Phases of the plan may run at a reduced resolution, as the fit's do.

The price steers the size. The selection kept the count whose probed size is the goal divided by the
expected shrinkage; the coded size then moves with the rate estimate, ``bytes ≈ coded + Δbits / 8``
from the set's file as last coded (every :data:`MEASURE_EVERY` steps, when the rate estimate rebuilds
its tables and its bits jump: coding 5,000 Gaussians takes 15-40 ms), and the price of every step is
``λ₀ · exp(gain · (predicted − reference) / goal)``, where the reference moves from the probed size to
the goal over the first part of the steps: a file heading over its path prices bits higher, one heading
under prices them lower. (A price that integrates the error overshoots: the values keep moving to
cheaper symbols after the size has reached the goal.)
A file still over its budget at the end of the plan is left to the entropy stage, which drops its
least important Gaussians (:func:`lgi_train.encode.entropy.fit_budget`): a price raised until the file
fits (the "settle" steps this stage ran until 2026-12-07) cost kodim23 0.6-0.8 dB each time it ran,
the values moving to cheaper symbols whatever the error (docs/encoder.md). One pass, no second fit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from lgi_train.bands import backward_in_bands, row_bands
from lgi_train.compress.codec import QuantizedSet
from lgi_train.compress.rate import SetRate, rate_weighted
from lgi_train.encode.fitting import Targets
from lgi_train.encode.tuning import Phase
from lgi_train.losses import mean_squared_error, squared_error_sum

#: The price's sensitivity to the predicted size: λ = price · exp(gain · (predicted − reference) / goal).
STEER_GAIN = 20.0
#: The reference size goes from the probed size to the goal over this share of the steps, then stays.
STEER_BY = 0.6
#: The set is coded every this many steps to anchor the predicted size; the rate estimate rebuilds its
#: tables at the same steps (its bits jump there, the coded size does not).
MEASURE_EVERY = 20
#: The price stays within [price / STEER_DOWN, price · STEER_UP].
STEER_DOWN = 8.0
STEER_UP = 2.0


@dataclass
class Steering:
    """Aim the coded size at ``goal`` bytes from a probed size of ``start`` bytes (see the module);
    ``code()``: the set's file now, coded every :data:`MEASURE_EVERY` steps to anchor the predicted size
    and once after the plan (``FinetuneLog.coded``); without it the size is predicted from ``start``."""

    goal: int
    start: int
    code: Callable[[], bytes] | None = None


@dataclass
class FinetuneLog:
    phases: list[tuple[str, int, float]] = field(default_factory=list)
    price_start: float = 0.0
    price_end: float = 0.0
    predicted_bytes: float | None = None
    coded: bytes | None = None  # the set's file as the fine-tuning left it, when it coded it (steering)
    trace: list[tuple[int, float, float]] = field(default_factory=list)  # (step, predicted bytes, price)
    measured: list[tuple[int, int]] = field(default_factory=list)  # (step, coded bytes) of the anchors


def finetune(qset: QuantizedSet, target: torch.Tensor, plan: Sequence[Phase], lrs: dict[str, float], price: float,
             steering: Steering | None = None, on_progress: Callable[[str, float], None] | None = None) -> FinetuneLog:
    """Fine-tune ``qset`` (in place) against ``target`` [C, H, W] along ``plan``; ``lrs``: base learning
    rates of "xy", "shape" and "color"; ``price``: the rate term's λ in dB per bpp (0: none)."""
    progress = on_progress or (lambda name, frac: None)
    targets = Targets(target.contiguous())
    rate = SetRate(qset, refresh_every=MEASURE_EVERY) if price > 0 else None
    groups = [{"params": [qset.xy], "lr": lrs["xy"], "name": "xy"},
              {"params": [qset.shape.codebook, qset.shape.own_values], "lr": lrs["shape"], "name": "shape"},
              {"params": [qset.color.codebook, qset.color.own_values], "lr": lrs["color"], "name": "color"}]
    opt = torch.optim.Adam(groups, eps=1e-15)
    log = FinetuneLog(price_start=price, price_end=price)
    anchor: list[float] = []  # (coded bytes, the rate estimate's bits) when the size was last known

    def step(scale: float, lr: float, lam: float, index: int) -> float | None:
        """Step ``index`` of the plan: one Adam step at ``scale`` of the size, learning rates × ``lr``,
        price ``lam``; returns the predicted coded size when steering."""
        for group in opt.param_groups:
            group["lr"] = lrs[group["name"]] * lr
        opt.zero_grad(set_to_none=True)
        tgt = targets.at(scale)
        h, w = tgt.shape[1:]
        bands = row_bands(h, w)
        if len(bands) == 1:
            loss = mean_squared_error(qset.render(h, w), tgt)
        else:  # the distortion band by band; the rate term below then only has its own graph
            value, _ = backward_in_bands(qset.params(), h, w, qset.render_mode, qset.topk, qset.backend,
                                         targets.hwc(scale), squared_error_sum, bands)
            loss = torch.tensor(value)
        predicted = None
        if rate is not None:
            bpp = rate.bpp()
            if steering is not None:
                bits = float(bpp.detach()) * rate.pixels
                if steering.code is not None and index % MEASURE_EVERY == 0:
                    coded = len(steering.code())  # the values this step starts from, as the bits are
                    anchor[:] = [coded, bits]
                    log.measured.append((index, coded))
                elif not anchor:
                    anchor[:] = [steering.start, bits]
                predicted = anchor[0] + (bits - anchor[1]) / 8
            loss = rate_weighted(loss, bpp, lam)
        if loss.requires_grad:
            loss.backward()
        opt.step()
        return predicted

    lam, predicted = price, None
    total = max(1, sum(p.steps for p in plan))
    done = 0
    for phase in plan:
        t0 = time.perf_counter()
        for group in opt.param_groups:
            group["betas"] = (group["betas"][0], phase.beta2)  # β1 as the optimizer has it
        for k in range(phase.steps):
            if predicted is not None:  # the price for this step, from the size the last one predicted
                ramp = min(1.0, done / max(1.0, STEER_BY * total))
                reference = steering.start + (steering.goal - steering.start) * ramp
                lam = price * math.exp(STEER_GAIN * (predicted - reference) / steering.goal)
                lam = min(price * STEER_UP, max(price / STEER_DOWN, lam))
                if done % 10 == 0:
                    log.trace.append((done, predicted, lam))
            predicted = step(phase.scale, phase.lr_at(k), lam, done)
            done += 1
            if k % 10 == 0 or k == phase.steps - 1:
                progress(phase.name, done / total)
        log.phases.append((phase.name, phase.steps, time.perf_counter() - t0))
    if steering is not None and steering.code is not None:
        log.coded = steering.code()
    log.predicted_bytes, log.price_end = predicted, lam
    return log
