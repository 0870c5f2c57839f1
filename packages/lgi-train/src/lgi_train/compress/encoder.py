"""Image → ``.lgi`` bytes: fit, (rate control), quantize, fine-tune, entropy code.

Rate control (``target_bytes``): the file size depends mostly on the number of Gaussians and the
quantizer steps, hardly on fine-tuning (which moves values, not indices). Steps are chosen from the
target rate (finer at high rates: ``quantizer_scale_for``). The encoder fits a few more Gaussians than
the first estimate, then binary-searches the count whose pruned, quantized and entropy-coded set (no
fine-tuning: a fraction of a second per probe) lands just under the target, prunes to it, re-fits
briefly, fine-tunes once, and checks the real size, pruning a little more in the rare case it is
still over. When fine-tuning with the rate term leaves the file under ``second_pass_below`` (98.5 %)
of the target, the count
is then searched again, and the first pass's fine-tuned set, grown by the next most important fitted
Gaussians, is re-fitted briefly in float (``second_pass_refit_steps``) and fine-tuned for a fraction
of the steps (``second_pass_fraction``). If even every fitted Gaussian stays under 95 % of the
target, the quantizer steps are refined instead until the set uses the budget. The result is at or under the target, within a few
percent.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from lgi_train.compress.codec import CodecSettings, QuantizedSet, decode_to_tensors, finetune, render_decoded
from lgi_train.compress.sensitivity import calc_sensitivity
from lgi_train.config import FitConfig
from lgi_train.encode.pipeline import EncodeResult  # noqa: F401 - the result type both encoders return
from lgi_train.encode.select import MAX_GAUSSIANS, MIN_GAUSSIANS, RateError, scaled_codec
from lgi_train.encode.select import subset as _pruned
from lgi_train.fit import Fitter, position_lr
from lgi_train.losses import make_loss, pixel_sum_for
from lgi_train.model import GaussianModel

# Effort: how long the fit and the quantization-aware fine-tuning run (docs/codec.md measures what
# each buys). The encode time grows about linearly with both.
# "default" is what EncodeOptions and CodecSettings give when no effort is named.
EFFORTS = {"fast": {"fit_steps": 500, "finetune_steps": 200},
           "default": {"fit_steps": 1000, "finetune_steps": CodecSettings.finetune_steps},
           "max": {"fit_steps": 3000, "finetune_steps": 1000}}
# What a bit per pixel buys by adding Gaussians near 0.5 bpp on Kodak (10 % fewer Gaussians cost about
# 0.3 dB, docs/codec.md): the fine-tuning gives up value bits that buy less (benchmarks/bench_rate.py).
RATE_DB_AT_HALF_BPP = 6.0
OVER_REDO = 1.01  # a first pass over the target by more than this is redone; less is pruned away


@dataclass
class EncodeOptions:
    """What the user asked for. Exactly one of num_gaussians / target_bytes decides the size; with
    neither, ``quality`` picks a bits-per-pixel target."""

    num_gaussians: int | None = None
    target_bytes: int | None = None
    # The encoder's fit (measured on Kodak, docs/codec.md "Blending"): the continuous top-K blend
    # (+0.66 dB over sum at 0.5 bpp, +0.28 at equal encode time; decoding costs about twice as much)
    # with K = 6 (level with K = 10 on 24 Kodak images, +0.11 .. -0.03 dB at 0.125 .. 1.0 bpp, with
    # cheaper fit steps: "The width K"),
    # L2 loss (the RD metric is PSNR), a cosine schedule over a fixed budget, coarse-to-fine, and
    # learning rates of the log-scales and rotations 8 times ``lgi fit``'s (0.04 and 0.016): a
    # 1000-step fit lets the Gaussians take their sizes and orientations only this fast (+0.97 dB at
    # equal rate on four Kodak images at 0.5 bpp; docs/codec.md, "The fit's shape learning rates").
    fit: FitConfig = field(default_factory=lambda: FitConfig(render_mode="topk", topk=6, loss="l2",
                                                             schedule="cosine", coarse_to_fine=True,
                                                             coarse_fraction=0.5, lr_scale=0.04,
                                                             lr_rotation=0.016, adam_beta2=0.999))
    # Large fits blend wider: a fit of at least ``wide_topk_from`` Gaussians uses K = ``wide_topk``
    # (if the fit's K is smaller). With the fit's shape learning rates, K = 10 instead of 6 was level at
    # 0.5 bpp on four Kodak images (about 5,000 Gaussians) but +0.09 dB at equal rate at 1.0 bpp
    # (10,000), +0.25 at 1.5 (15,000) and +0.38 on a 2.7 MP CLIC photo at 0.5 bpp (40,000), at about the
    # same encode time on Kodak (docs/codec.md, "The width K with the shape learning rates").
    # None: the fit's K whatever the count.
    wide_topk: int = 10
    wide_topk_from: int | None = 8000
    # Positions live in the unit square, so one learning rate moves a Gaussian by more pixels on a
    # larger image. The fit's position learning rate (and with it the re-fits' and the fine-tuning's) is
    # the one measured on Kodak's 768-pixel side; a canvas whose longer side is larger gets it scaled by
    # position_lr_side / side, a pixel step of the same size: +0.32 to +2.28 dB (+1.42 on the mean) on
    # the seven 2048-pixel CLIC photos at 0.5 bpp (docs/codec.md, "CLIC photos: K = 10, and the position
    # learning rate in pixels"). None: the same rate at every size. rd.py's --fit-setting lr_position
    # is scaled the same way.
    position_lr_side: int | None = 768
    codec: CodecSettings = field(default_factory=CodecSettings)
    fit_steps: int = EFFORTS["default"]["fit_steps"]
    # A rate target above 0.5 bpp lengthens the fit: its steps are multiplied by this factor at 1.0 bpp
    # and above, log-linearly in the rate from 1 at 0.5 bpp (:func:`fit_steps_for`). More Gaussians are
    # fitted less per step: 1400 instead of 1000 steps gained +0.07 to +0.28 dB at equal rate on four
    # Kodak images at 1.0 bpp (docs/codec.md, "A longer fit at high rates"). 1: the fit has fit_steps.
    fit_steps_at_1bpp: float = 1.4
    refit_steps: int = 60
    # The re-fits' learning rates (after pruning, and of the warm second pass's grown set) as a
    # multiple of the fit's.
    refit_lr_scale: float = 0.5
    overshoot: float = 1.05         # Gaussians fitted beyond the first estimate, to prune back
    # Bits per Gaussian of the first count estimate at the default steps; each halving of the steps
    # adds ~6 (about 6 values per Gaussian are quantized). Fitting more for the rate term's shrinkage
    # (then pruning harder) cost up to 0.3 dB: docs/codec.md, "Rate control: anticipating the shrinkage".
    bits_per_gaussian_guess: float = 34.0
    size_margin: float = 0.985      # the search aims this far under the target
    # Anticipated coded size after the rate-term fine-tuning ÷ the size the search probed before it:
    # the search aims at target × margin ÷ this. Measured 0.86-0.94 on Kodak; anticipating 0.88 saved
    # the second pass but cost up to 0.3 dB (docs/codec.md, "Rate control: anticipating the
    # shrinkage"), so 1: none.
    finetune_shrink: float = 1.0
    # When the first pass codes under 95 % of the target and the search finds room for more Gaussians,
    # the second pass starts from the first pass's fine-tuned set plus the next most important fitted
    # Gaussians and fine-tunes this fraction of the steps (docs/codec.md, "Rate control: a warm
    # second pass"). None: prune the fit again, re-fit and fine-tune the whole length (the encoder
    # until 2026-12).
    second_pass_fraction: float | None = 0.4
    # Float re-fit steps of the warm second pass's grown set before its fine-tuning (0: none), at the
    # re-fit's half learning rates, so that the first pass's Gaussians make room for the added ones:
    # +0.13..+0.24 dB on all 24 Kodak at 0.5 bpp for ~4 s (docs/codec.md, "A float re-fit").
    second_pass_refit_steps: int = 60
    # The first pass's file must fill at least this share of the target, else the second pass runs.
    # 0.97 rather than 0.95: +0.24 dB at equal rate on the 8 Kodak images whose 0.125 bpp files had
    # landed at 95-97 % (docs/codec.md, "The second pass's trigger"); 0.985 (the search's own aim)
    # rather than 0.97: +0.52 / +0.45 dB on the only two of 96 Kodak files that landed at 97-98.5 %.
    second_pass_below: float = 0.985
    # The fine-tuning's rate price in dB per bpp (compress/rate.py); None: RATE_DB_AT_HALF_BPP, scaled
    # as 1/bpp with the target (the step scale squared), following the slope of LGI's RD curve.
    rate_db: float | None = None
    # Large images: above tile_above pixels (None: never) the fit runs in overlapping tiles of about
    # ``tile`` pixels a side with ``tile_overlap`` pixels of context (compress/tiles.py), in
    # ``tile_workers`` processes (None: one per spare group of the torch threads). The stages after the
    # fit run on the whole image. 2^22 (4.2 MP) leaves Kodak and the 2.8 MP CLIC photos untiled.
    tile_above: int | None = 1 << 22
    tile: int = 1024
    tile_overlap: int = 32
    tile_workers: int | None = None


Stage = Callable[[str, float], None]  # (stage name, fraction done of that stage)


def with_effort(opts: EncodeOptions, effort: str) -> EncodeOptions:
    """``opts`` with the fit and fine-tuning lengths of an effort level (fast, default, max)."""
    if effort not in EFFORTS:
        raise ValueError(f"unknown effort {effort!r}; choose one of {', '.join(EFFORTS)}")
    e = EFFORTS[effort]
    return dataclasses.replace(opts, fit_steps=e["fit_steps"],
                               codec=dataclasses.replace(opts.codec, finetune_steps=e["finetune_steps"]))


def fit_steps_for(steps: int, bpp: float, factor: float) -> int:
    """The fit's steps for a target of ``bpp``: ``steps`` up to 0.5 bpp, ``steps`` × ``factor`` from 1.0 bpp
    on, geometric in between (× factor^log2(bpp / 0.5))."""
    share = min(1.0, max(0.0, math.log2(bpp / 0.5))) if bpp > 0 else 0.0
    return max(1, round(steps * factor ** share))


def step_scale_for(bpp: float) -> float:
    """Quantizer steps relative to the defaults for a target rate: (0.5 / bpp)^½ within [0.6, 1.2]."""
    return float(min(1.2, max(0.6, (0.5 / bpp) ** 0.5)))


def quantizer_scale_for(bpp: float) -> float:
    """The quantizer steps' scale for a target rate: :func:`step_scale_for` up to 0.5 bpp, and above it
    the flatter (0.5 / bpp)^¼ (coarser steps, more Gaussians for the bits: +0.11 dB at equal rate on the
    24 Kodak images at 1.0 bpp, docs/codec.md "A flatter step law above 0.5 bpp"), within [0.6, 1.2].
    The rate price and the first count estimate still follow :func:`step_scale_for`."""
    if bpp <= 0.5:
        return step_scale_for(bpp)
    return float(min(1.2, max(0.6, (0.5 / bpp) ** 0.25)))


def blend_for(cfg: FitConfig, n_fit: int, opts: EncodeOptions) -> FitConfig:
    """The fit's configuration for ``n_fit`` Gaussians: K widened to ``opts.wide_topk`` for large fits."""
    if cfg.render_mode == "sum" or opts.wide_topk_from is None or n_fit < opts.wide_topk_from:
        return cfg
    return cfg.replace(topk=max(cfg.topk, opts.wide_topk))


def position_lr_for(cfg: FitConfig, side: int, opts: EncodeOptions) -> FitConfig:
    """The fit's configuration for a canvas whose longer side is ``side`` pixels: the position learning
    rate scaled down by ``opts.position_lr_side / side`` above that side, unchanged at or below it (the
    rule of :func:`lgi_train.fit.position_lr`, applied here with the side this encoder chooses: the
    tiles' canvas for a tiled fit)."""
    return cfg.replace(lr_position=position_lr(cfg.replace(position_side=opts.position_lr_side), side))


def _count_for_bytes(target_bytes: int, bits_per_gaussian: float) -> int:
    return max(MIN_GAUSSIANS, min(MAX_GAUSSIANS, int(target_bytes * 8 / bits_per_gaussian)))


def encode_image(target: torch.Tensor, opts: EncodeOptions, on_stage: Stage | None = None) -> EncodeResult:
    """Encode ``target`` [C, H, W] in [0, 1]."""
    from lgi_dictco.gauss.format import encode_lgi

    stage = on_stage or (lambda name, frac: None)
    t0 = time.perf_counter()
    times: dict[str, float] = {}
    _, h, w = target.shape
    # The position learning rate's pixel step is this encoder's own (position_lr_for, with the tiles'
    # canvas for a tiled fit), so its fits take the rate as given (FitConfig.position_side None).
    cfg = opts.fit.replace(position_side=None)
    budget = opts.target_bytes
    if budget is not None and budget < 64:
        raise RateError(f"a target of {budget} bytes is below the smallest .lgi file (about 64 bytes)")
    rate_db = opts.rate_db
    if opts.num_gaussians is not None:
        n_fit = opts.num_gaussians
        rate_db = RATE_DB_AT_HALF_BPP if rate_db is None else rate_db
    else:
        bpp = budget * 8 / (h * w)
        scale = step_scale_for(bpp)
        rate_db = RATE_DB_AT_HALF_BPP * scale ** 2 if rate_db is None else rate_db
        opts = dataclasses.replace(opts, codec=scaled_codec(opts.codec, quantizer_scale_for(bpp)))
        guess = opts.bits_per_gaussian_guess + 6 * math.log2(1 / scale)
        n_fit = int(_count_for_bytes(budget, guess) * opts.overshoot)
    n_fit = max(1, min(n_fit, h * w, MAX_GAUSSIANS))
    cfg = blend_for(cfg, n_fit, opts)
    tile_cfg = position_lr_for(cfg, opts.tile + 2 * opts.tile_overlap, opts)  # a tile's canvas, if tiled
    cfg = position_lr_for(cfg, max(h, w), opts)
    opts = dataclasses.replace(opts, codec=dataclasses.replace(opts.codec, rate_db=rate_db))
    fit_steps = opts.fit_steps
    if budget is not None and opts.num_gaussians is None:
        fit_steps = fit_steps_for(opts.fit_steps, budget * 8 / (h * w), opts.fit_steps_at_1bpp)

    # 1. fit
    t = time.perf_counter()
    fit_cfg = cfg.replace(num_gaussians=n_fit, steps=fit_steps)
    tiles = None
    if opts.tile_above is not None and h * w > opts.tile_above:
        from lgi_train.compress.tiles import default_workers, fit_in_tiles

        workers = opts.tile_workers if opts.tile_workers is not None else default_workers()
        model, tiles = fit_in_tiles(target, tile_cfg.replace(num_gaussians=n_fit, steps=fit_steps), n_fit,
                                    opts.tile, opts.tile_overlap, workers,
                                    on_progress=lambda frac: stage("fit", frac))
    else:
        fitter = Fitter(target, fit_cfg, on_step=lambda s: stage("fit", s.step / max(1, fit_cfg.steps)))
        model = fitter.run().model
    model.quant = None
    times["fit"] = time.perf_counter() - t

    # 2. sensitivity, rate search, pruning, re-fit
    t = time.perf_counter()
    fitted = model
    fitted_sens = calc_sensitivity(fitted, h, w)
    order = torch.argsort(fitted_sens.importance.cpu(), descending=True, stable=True)
    generator = torch.Generator().manual_seed(cfg.seed)

    def refit(m: GaussianModel, steps: int) -> GaussianModel:
        """A fixed, short float re-fit of ``m`` at ``opts.refit_lr_scale`` × the fit's learning rates."""
        if steps <= 0:
            return m
        from lgi_train.model import make_optimizer

        refit_cfg = cfg.replace(num_gaussians=m.num_gaussians, steps=steps, progressive=False,
                                coarse_to_fine=False, qat=False, max_seconds=None)
        refitter = Fitter(target, refit_cfg)
        refitter.model = m
        refitter.optimizer = make_optimizer(m, refitter.lrs)
        refitter.lr_before_decay = opts.refit_lr_scale  # the cosine, when it starts, decays from 1
        refitter.state["best_psnr"] = float("inf")  # no plateau stop
        m = refitter.run().model
        m.quant = None
        return m

    def prune_and_refit(n: int):
        if n >= fitted.num_gaussians:
            return fitted, fitted_sens
        pruned = refit(_pruned(fitted, order, n), opts.refit_steps)
        return pruned, calc_sensitivity(pruned, h, w)

    n_final, probed_all, probed = fitted.num_gaussians, None, None
    shrink = opts.finetune_shrink if rate_db > 0 else 1.0
    log: dict = {"target_bytes": budget, "fitted": n_fit, "fit_steps": fit_steps, "finetune_shrink": shrink,
                 "passes": 1}
    if tiles is not None:
        log.update(tiles=len(tiles), tile_fitted=fitted.num_gaussians)
    if budget is not None:
        n_final, opts, probed, all_kept = _search_count(fitted, fitted_sens, order, h, w, opts,
                                                        int(budget * opts.size_margin / shrink), stage)
        probed_all = probed if all_kept else None
        log.update(kept=n_final, probed_bytes=probed)
    model, sens = prune_and_refit(n_final)
    times["prune"] = time.perf_counter() - t

    # 3-4. vector quantization and quantization-aware fine-tuning
    t = time.perf_counter()
    stage("quantize", 0.0)
    s = opts.codec.finetune_lr_scale
    shape_lr = cfg.lr_scale * s if opts.codec.finetune_shape_lr is None else opts.codec.finetune_shape_lr
    lrs = {"xy": cfg.lr_position * s, "shape": shape_lr, "color": cfg.lr_color * s}
    loss_fn, pixel_sum = make_loss(cfg), pixel_sum_for(cfg.loss)

    def quantize_and_finetune(options: EncodeOptions, steps: int | None = None) -> QuantizedSet:
        steps = options.codec.finetune_steps if steps is None else steps
        qs = QuantizedSet(model, h, w, options.codec, importance=sens, generator=generator)
        finetune(qs, target, steps, lrs, loss_fn, on_step=lambda k, _: stage("finetune", k / max(1, steps)),
                 rate_db=options.codec.rate_db, pixel_sum=pixel_sum)
        return qs

    qset = quantize_and_finetune(opts)
    times["quantize"] = time.perf_counter() - t

    # 5. entropy coding (and the rare corrections when fine-tuning moved the size off the target)
    t = time.perf_counter()
    stage("entropy-code", 0.0)
    data = encode_lgi(qset.to_payload())
    log["first_pass_bytes"] = len(data)
    if probed_all is not None and len(data) < opts.second_pass_below * budget:
        # Fine-tuning settles values on their grid, which codes smaller than the probe measured: with
        # every fitted Gaussian kept, aim the step search that much higher and quantize once more.
        goal = int(budget * opts.size_margin * probed_all / len(data))
        opts, _ = _refine_steps(model, sens, order, h, w, opts, goal, stage, probed_all)
        qset = quantize_and_finetune(opts)
        data = encode_lgi(qset.to_payload())
        log["passes"] = 2
    elif budget is not None and (len(data) < opts.second_pass_below * budget or len(data) > OVER_REDO * budget):
        # The shrinkage was not the anticipated one (it varies with the image, 0.86-0.94 on Kodak):
        # search the count again aimed by the measured shrinkage, and redo. (Above the target only
        # with finetune_shrink < 1; within a per cent over, the pruning loop below is cheaper.)
        goal = int(budget * opts.size_margin * probed / len(data))
        n_more, opts_more, _, _ = _search_count(fitted, fitted_sens, order, h, w, opts, goal, stage)
        if n_more > n_final and opts.second_pass_fraction is not None:
            model = refit(_grown(qset, fitted, order, n_final, n_more), opts.second_pass_refit_steps)
            sens = calc_sensitivity(model, h, w)
            n_final, opts = n_more, opts_more
            qset = quantize_and_finetune(opts, max(10, round(opts.codec.finetune_steps * opts.second_pass_fraction)))
            data = encode_lgi(qset.to_payload())
            log.update(passes=2, kept=n_final, second_pass="warm")
        elif n_more != n_final:
            n_final, opts = n_more, opts_more
            model, sens = prune_and_refit(n_final)
            qset = quantize_and_finetune(opts)
            data = encode_lgi(qset.to_payload())
            log.update(passes=2, kept=n_final)
    while budget is not None and len(data) > budget:
        n_now = qset.xy.shape[0]
        n_next = max(MIN_GAUSSIANS, int(n_now * (budget / len(data)) * 0.995))
        if n_next >= n_now:
            raise RateError(f"cannot reach {budget} bytes: even {n_now} Gaussians need {len(data)} bytes")
        qset = _shrink(qset, n_next, opts, generator, target, loss_fn, lrs, pixel_sum)
        data = encode_lgi(qset.to_payload())
        log["shrinks"] = log.get("shrinks", 0) + 1
        log["kept"] = n_next  # the Gaussians the file holds, after the trim as before it
    payload, params = decode_to_tensors(data, target.device)
    image = render_decoded(payload.header, params, h, w, backend=cfg.backend)
    times["entropy-code"] = time.perf_counter() - t
    stage("done", 1.0)
    log["final_bytes"] = len(data)
    return EncodeResult(data=data, image=image, num_gaussians=payload.header.num_gaussians, fitted_gaussians=n_fit,
                        seconds=time.perf_counter() - t0, stage_seconds=times, header=payload.header, rate_log=log)


def _probe_size(model: GaussianModel, sens, order: torch.Tensor, n: int, h: int, w: int, opts: EncodeOptions) -> int:
    from lgi_dictco.gauss.format import encode_lgi
    keep = order[:n]
    sub = _pruned(model, order, n)
    sub_sens = sens.subset(keep)
    settings = CodecSettings(**{**opts.codec.__dict__, "kmeans_iters": min(8, opts.codec.kmeans_iters)})
    qset = QuantizedSet(sub, h, w, settings, importance=sub_sens, generator=torch.Generator().manual_seed(0))
    return len(encode_lgi(qset.to_payload()))


def _search_count(model, sens, order, h, w, opts: EncodeOptions, goal: int, stage: Stage):
    """Largest n ≤ N whose coded size ≤ goal (sizes grow with n; a few probes). If all N stay under
    95 % of the goal, refine the quantizer steps instead. Returns (n, options, the probed size of n
    under those options, whether n is all of them)."""
    n_max = model.num_gaussians
    size = _probe_size(model, sens, order, n_max, h, w, opts)
    if size <= goal:
        if size < 0.95 * goal:
            opts, size = _refine_steps(model, sens, order, h, w, opts, goal, stage, size)
        return n_max, opts, size, True
    lo, hi = MIN_GAUSSIANS, n_max
    lo_size = None
    # First guess from the measured bits per Gaussian, then bisection on [lo, hi).
    guess = max(lo, min(hi - 1, int(n_max * goal / size)))
    for it in range(12):
        stage("rate-search", it / 12)
        s = _probe_size(model, sens, order, guess, h, w, opts)
        if s <= goal:
            lo, lo_size = guess, s
        else:
            hi = guess
        if hi - lo <= max(1, lo // 200):  # within 0.5 % of the count
            break
        ratio = goal / s
        guess = int(guess * ratio) if it == 0 else (lo + hi) // 2
        guess = max(lo + 1, min(hi - 1, guess)) if hi - lo > 1 else lo
    if lo_size is None:
        lo_size = _probe_size(model, sens, order, lo, h, w, opts)
        if lo == MIN_GAUSSIANS and lo_size > goal:
            raise RateError(f"the target is too small: even {MIN_GAUSSIANS} Gaussians take more bytes")
    return lo, opts, lo_size, False


def _refine_steps(model, sens, order, h, w, opts: EncodeOptions, goal: int, stage: Stage,
                  size: int | None = None):
    """Every fitted Gaussian fits under the goal with room to spare: spend it on finer quantizers
    (bisection on a step multiplier in [0.25, 1], largest multiplier whose size ≤ goal). ``size``: the
    probed size under ``opts``, if known. Returns (options, their probed size)."""
    n = model.num_gaussians
    lo, hi = 0.25, 1.0  # invariant: size(hi) <= goal
    best, best_size = opts, size if size is not None else _probe_size(model, sens, order, n, h, w, opts)
    for it in range(6):
        stage("rate-search", it / 6)
        mid = (lo + hi) / 2
        trial = dataclasses.replace(opts, codec=scaled_codec(opts.codec, mid))
        trial_size = _probe_size(model, sens, order, n, h, w, trial)
        if trial_size <= goal:
            hi, best, best_size = mid, trial, trial_size
        else:
            lo = mid
    return best, best_size


def _grown(qset: QuantizedSet, fitted: GaussianModel, order: torch.Tensor, n_from: int, n_to: int) -> GaussianModel:
    """The first pass's coded Gaussians (the ``n_from`` most important of the fit, fine-tuned, as the
    file holds them) and the next ``n_to - n_from`` of the fit as fitted, in the fit's index order
    (the order ``_pruned`` keeps, so pass one's rows are the first set's in sequence)."""
    from lgi_dictco.gauss.torch_quant import features_to_shape

    keep1 = torch.zeros(fitted.num_gaussians, dtype=torch.bool)
    keep1[order[:n_from]] = True
    keep2 = torch.zeros_like(keep1)
    keep2[order[:n_to]] = True
    with torch.no_grad():
        scales1, rot1 = features_to_shape(qset.shape.values())
        xy, rot, color = (t.detach().clone() for t in (fitted.xy, fitted.rotation, fitted.color))
        scales = torch.exp(fitted.log_scale.detach())
        dev = xy.device
        xy[keep1.to(dev)] = qset.positions().to(xy)
        scales[keep1.to(dev)] = scales1.to(scales)
        rot[keep1.to(dev)] = rot1.to(rot)
        color[keep1.to(dev)] = qset.rgb_colors().to(color)
    k2 = keep2.to(dev)
    return GaussianModel(xy[k2], scales[k2], rot[k2], color[k2], render_mode=fitted.render_mode,
                         topk=fitted.topk, backend=fitted.backend).to(dev)


def _shrink(qset: QuantizedSet, n: int, opts: EncodeOptions, generator, target, loss_fn, lrs,
            pixel_sum=None) -> QuantizedSet:
    """Drop the least important coded Gaussians down to n and re-code (after a short fine-tune)."""
    from lgi_dictco.gauss.torch_quant import features_to_shape

    with torch.no_grad():
        scales, rot = features_to_shape(qset.shape.values())
        model = GaussianModel(qset.positions(), scales, rot, qset.rgb_colors(), render_mode=qset.render_mode,
                              topk=qset.topk, backend=qset.backend)
    h, w = qset.height, qset.width
    sens = calc_sensitivity(model, h, w)
    order = torch.argsort(sens.importance.cpu(), descending=True, stable=True)
    small = _pruned(model, order, n)
    new = QuantizedSet(small, h, w, opts.codec, generator=generator)
    finetune(new, target, max(10, opts.codec.finetune_steps // 4), lrs, loss_fn, rate_db=opts.codec.rate_db,
             pixel_sum=pixel_sum)
    return new


def target_bytes_for(bpp: float | None, size: int | None, height: int, width: int) -> int | None:
    if bpp is not None and size is not None:
        raise RateError("give a bits-per-pixel target or a byte size, not both")
    if bpp is not None:
        if not 0 < bpp <= 24:
            raise RateError(f"--bpp must be in (0, 24], got {bpp}")
        return int(math.floor(bpp * height * width / 8))
    return size
