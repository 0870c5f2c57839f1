"""The encoder's stages (lgi_train.encode), each on a small image: what it outputs, not only that it runs."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from lgi_train.compress.codec import CodecSettings, QuantizedSet
from lgi_train.encode import TUNINGS, Options, Phase, RateError, encode
from lgi_train.encode.entropy import entropy_code, fit_budget
from lgi_train.encode.finetune import Steering, finetune
from lgi_train.encode.fitting import fit, learning_rates, scaled_plan
from lgi_train.encode.initialise import initial_model, solve_colors
from lgi_train.encode.select import _power_law_root, count_for, price_scale, select, step_scale
from lgi_train.encode.tuning import Tuning
from lgi_train.losses import clamped_mse

TINY = Tuning(fit=(Phase("q", 12, scale=0.5, grow=2), Phase("f", 12, lr_end=0.1)),
              finetune=(Phase("h", 6, scale=0.5, lr_end=0.5), Phase("f", 6, lr=0.5, lr_end=0.0)))


def image(h: int = 40, w: int = 56, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = torch.stack([x, y, 0.5 + 0.4 * torch.sin(6 * x + 3 * y)])
    return (0.8 * base + 0.2 * torch.rand(3, h, w, generator=g)).clamp(0, 1).contiguous()


def psnr(model, target) -> float:
    with torch.no_grad():
        return 10 * math.log10(1 / clamped_mse(model.render(*target.shape[1:]), target))


# --- tuning -------------------------------------------------------------------------------------------

def test_phase_learning_rate_follows_a_half_cosine():
    p = Phase("x", 11, lr=2.0, lr_end=0.5)
    assert p.lr_at(0) == pytest.approx(2.0) and p.lr_at(10) == pytest.approx(0.5)
    assert p.lr_at(5) == pytest.approx(1.25)
    assert Phase("c", 5, lr=0.7).lr_at(3) == 0.7


def test_efforts_are_ordered_by_work():
    steps = [TUNINGS[e].fit_steps() + TUNINGS[e].finetune_steps() for e in ("fast", "default", "max")]
    assert steps == sorted(steps) and len(set(steps)) == 3
    plan = scaled_plan(TUNINGS["default"].fit, 0.5)
    assert [p.steps for p in plan] == [max(1, round(p.steps * 0.5)) for p in TUNINGS["default"].fit]


# --- stage 1: initialise ----------------------------------------------------------------------------

def test_color_solve_is_the_least_squares_solution():
    target = image(24, 32)
    model = initial_model(target, 8, TINY, 6, torch.Generator().manual_seed(1))
    # A, column by column: the render of one Gaussian with colour 1 in one channel (the render is linear)
    from lgi_gsplat2d import render

    p = {k: v.detach() for k, v in model.params().items()}
    cols = []
    for i in range(8):
        c = torch.zeros(8, 1)
        c[i] = 1
        cols.append(render(p["means"], p["scales"], p["rotations"], c, 24, 32, mode="topk", k=6).reshape(-1))
    a = torch.stack(cols, 1).double()
    y = target.permute(1, 2, 0).reshape(-1, 3).double()
    best = torch.linalg.lstsq(a, y).solution
    ratio = solve_colors(model, target, 30)
    assert ratio < 1
    assert torch.allclose(model.color.detach().double(), best, atol=2e-3)


# --- stage 2: fit -----------------------------------------------------------------------------------

def test_fit_grows_to_the_count_and_lowers_the_error():
    target = image()
    g = torch.Generator().manual_seed(0)
    model = initial_model(target, 30, TINY, 6, g)
    before = psnr(model, target)
    log = fit(model, target, TINY.fit, learning_rates(TINY, 40, 56), 60, g)
    assert model.num_gaussians == 60 == log.num_gaussians
    assert [name for name, _, _ in log.phases] == ["q", "f"]
    assert psnr(model, target) > before + 1.0


def test_each_phase_runs_adam_with_its_beta2(monkeypatch, fitted):
    """The fit's and the fine-tuning's phases set Adam's β2 for their own steps (β1 stays 0.9)."""
    seen = []
    step = torch.optim.Adam.step

    def spy(self, *args, **kwargs):
        seen.append(tuple(g["betas"] for g in self.param_groups))
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", spy)
    target = image()
    g = torch.Generator().manual_seed(0)
    model = initial_model(target, 20, TINY, 6, g)
    fit(model, target, (Phase("a", 3, scale=0.5), Phase("b", 2, beta2=0.9)), learning_rates(TINY, 40, 56), 20, g)
    assert [set(b) for b in seen] == [{(0.9, 0.999)}] * 3 + [{(0.9, 0.9)}] * 2
    seen.clear()
    qset = QuantizedSet(fitted[1], 40, 56, CodecSettings(), generator=torch.Generator().manual_seed(0))
    finetune(qset, fitted[0], (Phase("f", 2, beta2=0.8), Phase("g", 1)), {"xy": 1e-3, "shape": 1e-3, "color": 1e-3}, 0.0)
    assert [set(b) for b in seen] == [{(0.9, 0.8)}] * 2 + [{(0.9, 0.999)}]


def test_phase_on_a_piece_of_a_longer_cosine():
    """lr_offset / lr_span: a phase that carries on a decay begun in the phase before it."""
    whole = Phase("w", 21, lr=1.0, lr_end=0.1)
    first, second = Phase("a", 8, lr=1.0, lr_end=0.1, lr_span=20), Phase("b", 13, lr=1.0, lr_end=0.1, lr_offset=8, lr_span=20)
    assert [first.lr_at(i) for i in range(8)] + [second.lr_at(i) for i in range(13)] == [whole.lr_at(i) for i in range(21)]


def test_run_plan_resumes_where_it_stopped_and_hooks_see_every_step():
    """The one loop of the encoder's fit and of `lgi fit`: a run stopped by a hook and resumed from its step
    (with the optimizer's state) ends where an uninterrupted run ends; explicit growth lands at its step."""
    from lgi_train.encode.fitting import Hooks, Targets, run_plan
    from lgi_train.model import make_optimizer

    target = image()
    lrs = learning_rates(TINY, 40, 56)
    plan = (Phase("a", 5, scale=0.5, grow_after=((2, 4),)), Phase("b", 6, lr_end=0.2, beta2=0.9))

    class Record(Hooks):
        measure = True

        def __init__(self, stop_at=None):
            self.steps, self.stop_at = [], stop_at

        def after_step(self, done):
            self.steps.append((done.step, done.phase.name, done.index, done.grown, round(done.lr, 6), done.mse > 0))
            return done.step == self.stop_at

    def run(start_model=None, start_opt=None, start=0, hooks=None):
        g = torch.Generator().manual_seed(0)
        model = start_model or initial_model(target, 10, TINY, 6, g)
        opt = start_opt or make_optimizer(model, lrs)

        def grow_batch(render, tgt, count):
            from lgi_train.encode.fitting import grow

            grow(model, opt, render, tgt, count, (40, 56), g, 0.6, 1.0)

        run_plan(model, opt, Targets(target), plan, lrs, grow_batch, start=start, hooks=hooks)
        return model, opt

    whole = Record()
    full, _ = run(hooks=whole)
    assert [s[:4] for s in whole.steps] == [(1, "a", 0, 0), (2, "a", 1, 0), (3, "a", 2, 4), (4, "a", 3, 0), (5, "a", 4, 0)] + [
        (6 + i, "b", i, 0) for i in range(6)]
    assert whole.steps[5][4] == 1.0 and whole.steps[-1][4] == 0.2 and all(s[5] for s in whole.steps)
    first = Record(stop_at=7)
    model, opt = run(hooks=first)
    assert first.steps == whole.steps[:7] and model.num_gaussians == 14
    rest = Record()
    resumed, _ = run(model, opt, start=7, hooks=rest)
    assert rest.steps == whole.steps[7:]
    for a, b in zip(full.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


def test_position_learning_rate_is_a_pixel_step():
    assert learning_rates(TINY, 512, 768)["xy"] * 768 == pytest.approx(TINY.position_px)
    assert learning_rates(TINY, 2048, 1536)["xy"] * 2048 == pytest.approx(TINY.position_px)


# --- stage 3: select --------------------------------------------------------------------------------

def test_step_law_and_prior():
    assert step_scale(0.125) == 1.2 and step_scale(0.5) == 1.0 and step_scale(2.0) == pytest.approx(0.5 ** 0.5)
    assert price_scale(0.125) == 4.0 and price_scale(0.5) == 1.0 and price_scale(4.0) == 0.36
    assert count_for(10_000, 0.5, 34.0) == int(80_000 / 34)
    assert _power_law_root(100, 1000, 200, 2000, 1500) == pytest.approx(150)
    assert _power_law_root(100, 1000, 400, 2000, 4000) == pytest.approx(1600)  # bytes ∝ n^0.5


@pytest.fixture(scope="module")
def fitted():
    target = image()
    g = torch.Generator().manual_seed(0)
    model = initial_model(target, 80, TINY, 6, g)
    fit(model, target, TINY.fit, learning_rates(TINY, 40, 56), 80, g)
    return target, model


def test_select_keeps_the_largest_count_under_the_goal(fitted):
    target, model = fitted
    codec = CodecSettings()
    every = select(model, 40, 56, codec, None)
    all_bytes = len(entropy_code(QuantizedSet(model, 40, 56, codec, importance=every.sensitivity)))
    goal = int(all_bytes * 0.7)
    chosen = select(model, 40, 56, codec, goal)
    n = chosen.model.num_gaussians
    assert 16 <= n < 80 and chosen.probed_bytes <= goal
    # the probed size is the size of exactly that set, and one more Gaussian's worth is at or over the goal
    probed = [size for count, _, size in chosen.probes if count == n]
    assert probed == [chosen.probed_bytes]
    over = [size for count, _, size in chosen.probes if count > n]
    assert over and min(over) > goal
    assert len(chosen.probes) <= 7


def test_a_selections_sensitivities_are_its_own_gaussians(fitted):
    from lgi_train.compress.sensitivity import calc_sensitivity

    _, model = fitted
    every = calc_sensitivity(model, 40, 56)
    goal = len(entropy_code(QuantizedSet(model, 40, 56, CodecSettings(), importance=every))) // 2
    chosen = select(model, 40, 56, CodecSettings(), goal)
    # each kept Gaussian, found by its position, carries the sensitivities it had in the whole set
    where = torch.cdist(chosen.model.xy.detach(), model.xy.detach()).argmin(1)
    assert where.unique().numel() == chosen.model.num_gaussians < model.num_gaussians
    for name in ("color", "shape", "position", "curvature"):
        torch.testing.assert_close(getattr(chosen.sensitivity, name), getattr(every, name)[where], rtol=0, atol=0)
    # so its probed size is the size of the set quantized with its own sensitivities
    assert chosen.probed_bytes == len(entropy_code(QuantizedSet(
        chosen.model, 40, 56, dataclasses.replace(CodecSettings(), kmeans_iters=8), importance=chosen.sensitivity,
        generator=torch.Generator().manual_seed(0))))


def test_select_refines_the_steps_when_everything_fits(fitted):
    _, model = fitted
    chosen = select(model, 40, 56, CodecSettings(), 100_000)
    assert chosen.model.num_gaussians == 80
    assert chosen.codec.color_step < CodecSettings().color_step


# --- stage 5: fine-tune -----------------------------------------------------------------------------

def test_steering_raises_the_price_above_the_goal_and_lowers_it_below(fitted):
    target, model = fitted
    lrs = {"xy": 1e-3, "shape": 0.05, "color": 0.01}
    prices = {}
    for name, goal in (("tight", 300), ("loose", 3000)):
        qset = QuantizedSet(model, 40, 56, CodecSettings())
        start = len(entropy_code(qset))
        log = finetune(qset, target, TINY.finetune, lrs, 6.0, Steering(goal=goal, start=start))
        prices[name] = log.price_end
        assert log.predicted_bytes is not None and log.trace
    assert prices["tight"] > 6.0 > prices["loose"]


def test_steering_anchors_its_prediction_on_the_coded_size(fitted):
    from lgi_train.encode.finetune import MEASURE_EVERY

    target, model = fitted
    qset = QuantizedSet(model, 40, 56, CodecSettings())
    first = len(entropy_code(qset))
    plan = (Phase("f", 2 * MEASURE_EVERY + 1, lr_end=0.0),)
    log = finetune(qset, target, plan, {"xy": 1e-3, "shape": 0.05, "color": 0.01}, 6.0,
                   Steering(goal=first // 2, start=10 * first, code=lambda: entropy_code(qset)))
    assert [step for step, _ in log.measured] == [0, MEASURE_EVERY, 2 * MEASURE_EVERY]
    assert log.measured[0][1] == first and log.coded == entropy_code(qset)
    # from the coded size, not from the (wrong) start it was given: the prediction ends near the file
    assert abs(log.predicted_bytes - len(log.coded)) < 0.05 * first


def test_finetune_lowers_the_quantized_error(fitted):
    target, model = fitted
    qset = QuantizedSet(model, 40, 56, CodecSettings())
    with torch.no_grad():
        before = clamped_mse(qset.render(), target)
    finetune(qset, target, TINY.finetune, {"xy": 1e-3, "shape": 0.05, "color": 0.01}, 0.0)
    with torch.no_grad():
        assert clamped_mse(qset.render(), target) < before


# --- stage 6: entropy code --------------------------------------------------------------------------

@pytest.mark.parametrize("settings", [CodecSettings(), CodecSettings(shape_codebook=8, shape_own_fraction=0.25,
                                                                     color_codebook=8, color_own_fraction=0.5)])
def test_keep_only_drops_gaussians_without_requantizing_the_rest(fitted, settings):
    target, model = fitted
    qset = QuantizedSet(model, 40, 56, settings)
    keep = torch.arange(0, model.num_gaussians, 3)
    sub = qset.keep_only(keep)
    assert sub.num_gaussians == keep.numel() and qset.num_gaussians == model.num_gaussians
    with torch.no_grad():
        whole, part = qset.params(), sub.params()
    for name in whole:  # the kept Gaussians render with exactly the values they had
        torch.testing.assert_close(part[name], whole[name][keep], rtol=0, atol=0)
    a, b = qset.to_payload(), sub.to_payload()
    np.testing.assert_array_equal(b.positions, a.positions[keep.numpy()])
    assert b.header.pos_bits == a.header.pos_bits and b.header.class_drop == a.header.class_drop
    assert len(entropy_code(sub)) < len(entropy_code(qset))


def test_fit_budget_trims_a_file_over_its_budget(fitted):
    target, model = fitted
    qset = QuantizedSet(model, 40, 56, CodecSettings())
    data = entropy_code(qset)
    budget = int(len(data) * 0.8)
    from lgi_train.compress.sensitivity import calc_sensitivity

    importance = calc_sensitivity(model, 40, 56).importance
    small, out, trims = fit_budget(qset, data, budget, importance)
    assert len(out) <= budget and trims >= 1 and small.num_gaussians < qset.num_gaussians
    assert out == entropy_code(small) and qset.num_gaussians == 80  # the set given is left as it was
    # it dropped the least important: keeping the least important as many instead renders far worse
    least = torch.argsort(importance)[:small.num_gaussians]
    with torch.no_grad():
        assert 2 * clamped_mse(small.render(), target) < clamped_mse(qset.keep_only(torch.sort(least).values).render(), target)
    same, again, none = fit_budget(qset, data, len(data), importance)
    assert same is qset and again == data and none == 0


# --- the pipeline -----------------------------------------------------------------------------------

def test_encode_lands_under_the_size_and_decodes_to_its_image():
    from lgi_dictco.gauss import decode

    target = image()
    budget = 600
    result = encode(target, Options(size=budget, tuning=TINY))
    assert 0.8 * budget <= len(result.data) <= budget
    assert result.rate_log["passes"] == 1 and result.num_gaussians == result.rate_log["kept"]
    assert decode(result.data).payload.header.num_gaussians == result.num_gaussians
    assert set(result.stage_seconds) == {"initialise", "fit", "select", "quantize", "finetune", "entropy-code"}
    again = encode(target, Options(size=budget, tuning=TINY))
    assert again.data == result.data  # deterministic for a seed
    assert encode(target, Options(size=budget, tuning=TINY, seed=1)).data != result.data


def test_encode_fixed_count_and_gray():
    gray = image()[:1].contiguous()
    result = encode(gray, Options(gaussians=30, tuning=TINY))
    assert result.num_gaussians == 30 and result.image.shape == (1, 40, 56)
    assert result.header.channels == 1


def test_encode_reports_stages_in_order():
    seen = []
    encode(image(), Options(gaussians=20, tuning=TINY), lambda name, frac: seen.append(name))
    order = [s for i, s in enumerate(seen) if i == 0 or seen[i - 1] != s]
    assert order == ["initialise", "fit", "select", "quantize", "finetune", "entropy-code", "done"]


@pytest.mark.parametrize("kwargs,message", [
    ({"size": 10}, "below the smallest"), ({"bpp": 0}, "bpp must be in"), ({"bpp": 0.5, "size": 100}, "not bpp and size"),
    ({"gaussians": 0}, ">= 1"),
])
def test_options_refuse_impossible_requests(kwargs, message):
    with pytest.raises(RateError, match=message):
        Options(**kwargs)


def test_too_small_a_budget_for_the_image_is_refused():
    with pytest.raises(RateError, match="smallest"):
        Options(bpp=0.01).budget(40, 56)
    with pytest.raises(ValueError, match="unknown effort"):
        Options(effort="turbo")


def test_tuning_can_be_overridden_per_field():
    t = TUNINGS["default"].replace(topk=11)
    assert t.topk == 11 and TUNINGS["default"].topk != 11  # frozen: the named tuning is unchanged
    with pytest.raises(dataclasses.FrozenInstanceError):
        TUNINGS["default"].topk = 11
    assert Options(tuning=t).resolved_tuning() is t and Options().resolved_tuning() is TUNINGS["default"]
