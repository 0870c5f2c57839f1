"""Image → ``.lgi`` bytes, top to bottom: initialise → fit → select → quantize → fine-tune → entropy-code.

Each stage is one module of this package with one job; this function only hands each stage's
output to the next and times them. The rate target decides, before any work, the quantizer steps
(:func:`.select.step_scale`), the rate term's price (:func:`.select.price_scale`) and the number of Gaussians to fit
(:func:`.select.count_for`). The selection runs in the middle of the fit (after
``Tuning.select_after`` phases, the reduced-size ones): it keeps the most important Gaussians whose
probed coded size fits the aim, the fit's full-size phase refines only those, and the refined set is
measured once more. The fine-tuning steers the size onto the target. There is no second pass.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from lgi_train.compress.codec import QuantizedSet, decode_to_tensors, render_decoded
from lgi_train.encode.entropy import entropy_code, fit_budget
from lgi_train.encode.finetune import Steering, finetune
from lgi_train.encode.fitting import fit, learning_rates, scaled_plan
from lgi_train.encode.initialise import initial_model
from lgi_train.encode.options import Options
from lgi_train.encode.select import MAX_GAUSSIANS, count_for, price_scale, scaled_codec, select, step_scale
from lgi_train.encode.tuning import Tuning

Stage = Callable[[str, float], None]  # (stage name, fraction done of that stage)
#: The stages in order, as ``on_stage`` names them.
STAGES = ("initialise", "fit", "select", "quantize", "finetune", "entropy-code", "done")


@dataclass
class EncodeResult:
    data: bytes
    image: torch.Tensor             # [C, H, W] decoded render in [0, 1], as a decoder shows it
    num_gaussians: int
    fitted_gaussians: int
    seconds: float
    stage_seconds: dict[str, float]
    header: object = None
    rate_log: dict = field(default_factory=dict)


def fit_factor(tuning: Tuning, bpp: float | None) -> float:
    """The fit's step multiplier at ``bpp``: 1 up to 0.5 bpp, ``steps_at_1bpp`` from 1 bpp on, geometric
    between (more Gaussians are fitted less per step)."""
    if bpp is None or bpp <= 0:
        return 1.0
    share = min(1.0, max(0.0, math.log2(bpp / 0.5)))
    return tuning.steps_at_1bpp ** share


def encode(target: torch.Tensor, options: Options, on_stage: Stage | None = None) -> EncodeResult:
    """Encode ``target`` [C, H, W] in [0, 1] (C = 1 or 3) as ``options`` asks."""
    stage = on_stage or (lambda name, frac: None)
    tuning = options.resolved_tuning()
    t_start = time.perf_counter()
    times: dict[str, float] = {}
    target = target.to(options.device, torch.float32).contiguous()
    _, h, w = target.shape
    budget = options.budget(h, w)

    # The plan for this rate.
    if budget is None:
        bpp, codec, price = None, tuning.codec, tuning.rate_db
        n_fit = options.gaussians
    else:
        bpp = budget * 8 / (h * w)
        codec = scaled_codec(tuning.codec, step_scale(bpp))
        price = tuning.rate_db * price_scale(bpp)
        n_fit = int(count_for(budget / tuning.expected_shrink, bpp, tuning.bits_per_gaussian) * tuning.overshoot)
    n_fit = max(1, min(n_fit, h * w, MAX_GAUSSIANS))
    topk = tuning.wide_topk if n_fit >= tuning.wide_topk_from else tuning.topk
    generator = torch.Generator().manual_seed(options.seed)
    lrs = learning_rates(tuning, h, w)

    t = time.perf_counter()
    stage("initialise", 0.0)
    model = initial_model(target, max(1, round(n_fit * tuning.start_share)), tuning, topk, generator, options.backend)
    times["initialise"] = time.perf_counter() - t

    # 2-3. fit, select the Gaussians that fit the budget, refine them (the rest of the plan), measure again
    plan = scaled_plan(tuning.fit, fit_factor(tuning, bpp))
    total = max(1, sum(p.steps for p in plan))
    first, rest = plan[:tuning.select_after], plan[tuning.select_after:]
    share = sum(p.steps for p in first) / total
    goal = None if budget is None else int(budget * tuning.margin)
    aim = None if goal is None else int(goal / tuning.expected_shrink)
    t = time.perf_counter()
    fit_log = fit(model, target, first, lrs, n_fit, generator, lambda name, frac: stage("fit", frac * share),
                  init_scale=tuning.init_scale)
    fitted = model.num_gaussians
    times["fit"] = time.perf_counter() - t
    t = time.perf_counter()
    chosen = select(model, h, w, codec, aim) if rest else None  # shown as part of the fit
    times["select"] = time.perf_counter() - t
    if rest:
        t = time.perf_counter()
        model = chosen.model
        refine_log = fit(model, target, rest, lrs, model.num_gaussians, generator,
                         lambda name, frac: stage("fit", share + frac * (1 - share)), init_scale=tuning.init_scale)
        fit_log.phases += refine_log.phases
        codec = chosen.codec
        times["fit"] += time.perf_counter() - t
    t = time.perf_counter()
    stage("select", 0.0)
    # the refined set: measured, and pruned only if it is over the aim by more than the steering makes up
    chosen = select(model, h, w, codec, None if aim is None else int(aim * (1 + tuning.refine_slack)))
    times["select"] += time.perf_counter() - t

    t = time.perf_counter()
    stage("quantize", 0.0)
    qset = QuantizedSet(chosen.model, h, w, chosen.codec, importance=chosen.sensitivity,
                        generator=generator).to(target.device)
    times["quantize"] = time.perf_counter() - t

    t = time.perf_counter()
    ft = tuning.finetune_lr
    ft_lrs = {"xy": lrs["xy"] * ft, "shape": lrs["log_scale"] * ft, "color": lrs["color"] * ft}
    steering = None if goal is None else Steering(goal=goal, start=chosen.probed_bytes, code=lambda: entropy_code(qset))
    ft_log = finetune(qset, target, tuning.finetune, ft_lrs, price, steering,
                      lambda name, frac: stage("finetune", frac))
    times["finetune"] = time.perf_counter() - t

    t = time.perf_counter()
    stage("entropy-code", 0.0)
    data = ft_log.coded if ft_log.coded is not None else entropy_code(qset)  # coded once, by the steering
    first_bytes = len(data)
    qset, data, trims = fit_budget(qset, data, budget, chosen.sensitivity.importance)
    payload, params = decode_to_tensors(data, target.device)
    image = render_decoded(payload.header, params, h, w, backend=options.backend)
    times["entropy-code"] = time.perf_counter() - t
    stage("done", 1.0)
    log = {"target_bytes": budget, "fitted": fitted, "fit_steps": sum(p.steps for p in plan),
           "topk": topk, "kept": payload.header.num_gaussians, "probes": chosen.probes,
           "probed_bytes": chosen.probed_bytes, "price": [round(ft_log.price_start, 3), round(ft_log.price_end, 3)],
           "predicted_bytes": ft_log.predicted_bytes, "finetuned_bytes": first_bytes, "steering": ft_log.trace, "trims": trims,
           "final_bytes": len(data), "passes": 1}
    return EncodeResult(data=data, image=image, num_gaussians=payload.header.num_gaussians,
                        fitted_gaussians=fitted, seconds=time.perf_counter() - t_start,
                        stage_seconds=times, header=payload.header, rate_log=log)
