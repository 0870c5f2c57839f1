"""Stage 3: the Gaussians that fit the budget, and the quantizer steps they are coded with.

The coded size of a fitted set depends on two things the encoder chooses: how many Gaussians it
keeps (the most important first, :class:`~lgi_train.compress.sensitivity.Sensitivity`) and the
quantizer steps of their values. This module holds the encoder's whole rate model:

* the steps follow the target rate (:func:`step_scale`), finer at higher rates;
* the first count is a prior, ``target bits ÷ bits per Gaussian`` (:func:`count_for`), which sets
  how many Gaussians the fit makes;
* after the fit, :func:`select` measures the coded size of real subsets (a probe quantizes and
  entropy-codes a subset without fine-tuning: a fraction of a second) and models
  ``bytes(n) = a · n^β`` through the last two probes, so that two or three probes find the largest
  count under the goal. When every fitted Gaussian fits with room to spare, the steps are made finer
  instead, under the same kind of model in the step multiplier.

The fine-tuning then lands the file on the target by steering its rate term's price
(:mod:`.finetune`), and :mod:`.entropy` trims the rare file that is still over.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch

from lgi_train.compress.codec import CodecSettings, QuantizedSet
from lgi_train.compress.sensitivity import Sensitivity, calc_sensitivity
from lgi_train.model import GaussianModel

MIN_GAUSSIANS = 16
MAX_GAUSSIANS = 1 << 21


class RateError(ValueError):
    """The requested size cannot be reached (e.g. smaller than the smallest possible file)."""


def step_scale(bpp: float) -> float:
    """Quantizer steps relative to the defaults for a target of ``bpp``: (0.5 / bpp)^½ up to 0.5 bpp and
    the flatter (0.5 / bpp)^¼ above it (coarser steps, more Gaussians for the bits), within [0.6, 1.2]."""
    power = 0.5 if bpp <= 0.5 else 0.25
    return float(min(1.2, max(0.6, (0.5 / bpp) ** power)))


def prior_scale(bpp: float) -> float:
    """The steps' scale the count prior and the rate price follow: (0.5 / bpp)^½ within [0.6, 1.2]."""
    return float(min(1.2, max(0.6, (0.5 / bpp) ** 0.5)))


def price_scale(bpp: float) -> float:
    """The rate term's price relative to its value at 0.5 bpp: 0.5 / bpp, at least 0.36 (from 1.39 bpp on).

    The slope of PSNR against rate grows as 1/bpp toward low rates (Kodak: about 16 dB/bpp at 0.125,
    6 at 0.5). The price followed ``prior_scale``², which stops at 1.44 below 0.35 bpp: at 0.125 bpp
    the fine-tuning then shrank the file too little and 19 of 24 Kodak files came out over their
    budget (docs/encoder.md)."""
    return float(max(0.36, 0.5 / bpp))


def count_for(target_bytes: int, bpp: float, bits_per_gaussian: float) -> int:
    """The prior count for a target: each halving of the steps costs about 6 bits a Gaussian more."""
    bits = bits_per_gaussian + 6 * math.log2(1 / prior_scale(bpp))
    return max(MIN_GAUSSIANS, min(MAX_GAUSSIANS, int(target_bytes * 8 / bits)))


def scaled_codec(codec: CodecSettings, scale: float) -> CodecSettings:
    """``codec`` with its colour and shape steps multiplied by ``scale``."""
    return dataclasses.replace(codec, color_step=codec.color_step * scale,
                               shape_step=tuple(s * scale for s in codec.shape_step))


def subset(model: GaussianModel, order: torch.Tensor, n: int) -> GaussianModel:
    """A copy of ``model`` with its ``n`` most important Gaussians (``order``: most important first),
    in their index order."""
    keep = torch.zeros(model.num_gaussians, dtype=torch.bool)
    keep[order[:n].cpu()] = True
    keep = keep.to(model.xy.device)
    out = GaussianModel(model.xy.detach()[keep], torch.exp(model.log_scale.detach()[keep]),
                        model.rotation.detach()[keep], model.color.detach()[keep],
                        render_mode=model.render_mode, topk=model.topk, backend=model.backend)
    return out.to(model.xy.device)


def kept_sensitivity(sens: Sensitivity, order: torch.Tensor, n: int) -> Sensitivity:
    """The sensitivities of :func:`subset`'s Gaussians, in its order (the models' index order).

    Until 2026-12-08 they were taken in ``order``'s (importance) order, so a subset's precision classes
    went to the wrong Gaussians: every probe's size was that of a misclassified set, and a refined set
    pruned after the full-size phase lost 0.6 dB (kodim02 at 1 bpp; docs/encoder.md)."""
    return sens.subset(torch.sort(order[:n]).values.to(sens.color.device))


@dataclass
class Selection:
    """What goes on to quantization: the kept Gaussians, their sensitivities, the codec settings, the
    probed coded size of exactly that (before fine-tuning), and the probes that found it."""

    model: GaussianModel
    sensitivity: Sensitivity
    codec: CodecSettings
    probed_bytes: int
    probes: list[tuple[int, float, int]] = field(default_factory=list)  # (count, step multiplier, bytes)


class _Prober:
    """Coded sizes of the ``n`` most important fitted Gaussians under a step multiplier, remembered."""

    def __init__(self, model: GaussianModel, sens: Sensitivity, height: int, width: int, codec: CodecSettings):
        self.model, self.sens, self.h, self.w, self.codec = model, sens, height, width, codec
        self.order = torch.argsort(sens.importance.cpu(), descending=True, stable=True)
        self.log: list[tuple[int, float, int]] = []

    def __call__(self, n: int, mult: float = 1.0) -> int:
        from lgi_dictco.gauss.format import encode_lgi

        for count, m, size in self.log:
            if count == n and m == mult:
                return size
        codec = dataclasses.replace(scaled_codec(self.codec, mult), kmeans_iters=min(8, self.codec.kmeans_iters))
        qset = QuantizedSet(subset(self.model, self.order, n), self.h, self.w, codec,
                            importance=kept_sensitivity(self.sens, self.order, n),
                            generator=torch.Generator().manual_seed(0))
        size = len(encode_lgi(qset.to_payload()))
        self.log.append((n, mult, size))
        return size


def _power_law_root(x0: float, y0: float, x1: float, y1: float, goal: float) -> float:
    """x where the power law through (x0, y0) and (x1, y1) reaches ``goal`` (linear in logs)."""
    if x0 == x1 or y0 == y1 or min(x0, x1, y0, y1) <= 0:
        return x1 * goal / y1
    beta = math.log(y1 / y0) / math.log(x1 / x0)
    if beta <= 0:
        return x1 * goal / y1
    return x1 * (goal / y1) ** (1 / beta)


def select(model: GaussianModel, height: int, width: int, codec: CodecSettings, goal: int | None,
           max_probes: int = 6) -> Selection:
    """The largest set of ``model``'s most important Gaussians whose coded size is at most ``goal`` bytes
    (None: all of them, as they are), with finer steps when all of them fit with room to spare."""
    sens = calc_sensitivity(model, height, width)
    probe = _Prober(model, sens, height, width, codec)
    n_all = model.num_gaussians
    size_all = probe(n_all) if goal is not None else 0
    if goal is None or size_all <= goal:
        mult, size = 1.0, size_all
        if goal is not None and size_all < 0.95 * goal:
            mult, size = _finer_steps(probe, n_all, goal, size_all, max_probes)
        return Selection(model, sens, scaled_codec(codec, mult), size, probe.log)
    # Every probe above the goal lowers the ceiling, every one under it raises the floor; the power law
    # through the floor and the ceiling (or through the last two probes, before there is a floor) picks
    # the next count.
    lo, lo_size, hi, hi_size = MIN_GAUSSIANS, None, n_all, size_all
    last = (n_all, size_all)
    n = max(lo, min(hi - 1, int(n_all * goal / size_all)))
    for _ in range(max_probes):
        size = probe(n)
        if size <= goal:
            lo, lo_size = n, size
        else:
            hi, hi_size = n, size
        if hi - lo <= max(1, lo // 200) or (lo_size is not None and lo_size >= 0.995 * goal):
            break
        a, b = ((lo, lo_size), (hi, hi_size)) if lo_size is not None else (last, (n, size))
        last = (n, size)
        n = int(max(lo + 1, min(hi - 1, _power_law_root(*a, *b, goal * 0.998))))
    if lo_size is None:
        lo_size = probe(lo)
        if lo_size > goal:
            raise RateError(f"the target is too small: even {MIN_GAUSSIANS} Gaussians take {lo_size} bytes")
    kept = subset(model, probe.order, lo)
    return Selection(kept, kept_sensitivity(sens, probe.order, lo), codec, lo_size, probe.log)


def _finer_steps(probe: _Prober, n: int, goal: int, size: int, max_probes: int) -> tuple[float, int]:
    """The coarsest step multiplier in [0.25, 1] whose size with all ``n`` Gaussians is under ``goal``."""
    lo, hi, best = 0.25, 1.0, (1.0, size)  # invariant: size(hi) <= goal
    mult = max(lo, min(0.95, (size / goal) ** 2))  # about −2 bits a value per halving: a first guess
    for _ in range(max_probes):
        s = probe(n, mult)
        if s <= goal:
            hi, best = mult, (mult, s)
            if s >= 0.99 * goal:
                break
        else:
            lo = mult
        mult = (lo + hi) / 2
        if hi - lo < 0.01:
            break
    return best
