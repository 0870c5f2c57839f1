"""Stage 2: fit the Gaussians to the image, phase after phase of a plan, in one loop.

Every step renders the Gaussians at the phase's resolution (they are resolution independent: a
quarter-size step draws the same set on a quarter of the pixels), takes the L2 loss against the image
downsampled to that size, and moves the trained groups with Adam at the phase's learning rates. One
Adam state runs through the whole plan. In a phase with growth, Gaussians are added in batches where
the blurred error of the current render is largest, so that the count reaches the phase's share of
the final count at its end (existing Gaussians keep their Adam moments). Images above
:data:`lgi_train.bands.BAND_PIXELS` pixels render in bands of rows at full size.

The position learning rate is a step in pixels (:attr:`Tuning.position_px` of the longer side), so a
Gaussian moves as far per step on a 2048-pixel photo as on a 768-pixel one.

:func:`run_plan` is the one fitting loop of lgi-train: the encoder's fit (:func:`fit`) and ``lgi fit``
(:class:`lgi_train.fit.Fitter`, whose config compiles to a plan) both run it; ``lgi fit`` adds its loss,
logging, best-state tracking, plateau schedule and checkpoints through :class:`Hooks`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F

from lgi_train.bands import backward_in_bands, row_bands
from lgi_train.encode.tuning import Phase, Tuning
from lgi_train.init import colors_at, sample_from_density, scales_from_density
from lgi_train.losses import clamped_mse, mean_squared_error, squared_error_sum
from lgi_train.model import GaussianModel, make_optimizer

Progress = Callable[[str, float], None]  # (phase name, fraction of the whole plan done)


@dataclass
class FitLog:
    """What a run of a plan did: per phase, its steps and seconds; the count at the end."""

    phases: list[tuple[str, int, float]] = field(default_factory=list)
    num_gaussians: int = 0


def learning_rates(tuning: Tuning, height: int, width: int) -> dict[str, float]:
    """Adam's base learning rates of the four groups; positions move ``position_px`` pixels a step."""
    return {"xy": tuning.position_px / max(height, width), "log_scale": tuning.lr_scale,
            "rotation": tuning.lr_rotation, "color": tuning.lr_color}


def scaled_plan(phases: Sequence[Phase], factor: float) -> tuple[Phase, ...]:
    """``phases`` with every phase's steps multiplied by ``factor`` (at least one step each)."""
    return tuple(replace(p, steps=max(1, round(p.steps * factor))) if p.steps else p for p in phases)


def _blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """[H, W] Gaussian blur with a separable kernel (replicate padding)."""
    if sigma <= 0:
        return img
    r = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-r, r + 1, dtype=img.dtype, device=img.device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    out = F.pad(img[None, None], (r, r, r, r), mode="replicate")
    out = F.conv2d(out, k.view(1, 1, 1, -1))
    return F.conv2d(out, k.view(1, 1, -1, 1))[0, 0]


def downsample(target: torch.Tensor, scale: float) -> torch.Tensor:
    """[C, H, W] → [C, round(H·s), round(W·s)] by area averaging (antialiased)."""
    h, w = target.shape[1:]
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.interpolate(target[None], size=size, mode="area")[0]


class Targets:
    """The image at each phase's resolution, made once."""

    def __init__(self, target: torch.Tensor):
        self.full = target
        self._at: dict[float, torch.Tensor] = {1.0: target}
        self._hwc: dict[float, torch.Tensor] = {}

    def at(self, scale: float) -> torch.Tensor:
        if scale not in self._at:
            self._at[scale] = downsample(self.full, scale).contiguous()
        return self._at[scale]

    def hwc(self, scale: float) -> torch.Tensor:
        """The image at ``scale`` as [H, W, C] (for steps in bands of rows)."""
        if scale not in self._hwc:
            self._hwc[scale] = self.at(scale).permute(1, 2, 0).contiguous()
        return self._hwc[scale]

    def hwc_of(self, image: torch.Tensor) -> torch.Tensor:
        """``image`` as [H, W, C]: kept for one of these targets, a copy for any other."""
        for scale, t in self._at.items():
            if t is image:
                return self.hwc(scale)
        return image.permute(1, 2, 0).contiguous()


class Hooks:
    """What a caller of :func:`run_plan` adds around its steps (all optional; these defaults do nothing).

    ``lgi fit`` (:class:`lgi_train.fit.Fitter`) uses them for its logging, best-state tracking, plateau
    schedule, checkpoints and time cap; the encoder needs none.

    Attributes:
        measure: compute each step's clamped MSE (``StepDone.mse``; costs a pass over the image).
        lr_multiple: multiplies every phase's learning rates (a plateau schedule lowers it).
    """

    measure: bool = False
    lr_multiple: float = 1.0

    def phase_started(self, phase: Phase, step: int) -> None:
        """Called before the first step of ``phase`` that this run takes (``step``: steps done before it)."""

    def before_update(self, done: StepDone) -> None:
        """Called after the backward pass and before Adam moves the parameters."""

    def after_step(self, done: StepDone) -> bool:
        """Called after each step and its growth; True ends the run."""
        return False


@dataclass
class StepDone:
    """One step of a plan, as :class:`Hooks` see it."""

    step: int                     # steps of the plan done, this one included
    phase: Phase
    index: int                    # 0-based step within the phase
    lr: float                     # the learning rates' multiple it used
    loss: torch.Tensor            # the loss (a detached value for a render in bands)
    mse: float | None             # the clamped render's mean squared error, if Hooks.measure
    render: torch.Tensor | None   # the render, when the step grows (or on a single-band image)
    grown: int = 0                # Gaussians added after it


def run_plan(model: GaussianModel, optimizer: torch.optim.Optimizer, targets: Targets, plan: Sequence[Phase],
             lrs: dict[str, float], grow_batch: Callable[[torch.Tensor, torch.Tensor, int], object],
             final_count: int | None = None, start: int = 0, loss=mean_squared_error, pixel_sum=squared_error_sum,
             hooks: Hooks | None = None, on_progress: Progress | None = None) -> FitLog:
    """The one fitting loop of lgi-train: run ``plan``'s phases on ``model`` (changed in place) with ``optimizer``.

    Each step renders the model at the phase's resolution, takes ``loss`` against the target at that size
    (a target above :data:`lgi_train.bands.BAND_PIXELS` pixels in bands of rows, with ``pixel_sum``; None:
    never in bands), and moves the groups of ``phase.train`` with Adam at ``lrs`` × the phase's multiple at
    that step × ``hooks.lr_multiple`` and Adam's β2 of the phase. After a growth step, ``grow_batch(render,
    target, count)`` adds the Gaussians (``phase.grow_after``, or ``reach`` × ``final_count`` in ``grow``
    batches). ``start``: steps of the plan already done (a resumed fit), skipped.
    """
    hooks = hooks or Hooks()
    progress = on_progress or (lambda name, frac: None)
    total = max(1, sum(p.steps for p in plan))
    done = 0
    log = FitLog()
    for phase in plan:
        if done + phase.steps <= start:
            done += phase.steps
            continue
        t0 = time.perf_counter()
        first = start - done if start > done else 0
        done += first
        tgt = targets.at(phase.scale)
        big = pixel_sum is not None and len(row_bands(*tgt.shape[1:])) > 1
        grow_at = dict(phase.grow_after) if phase.grow_after else _growth_steps(
            phase, model.num_gaussians, final_count if final_count is not None else model.num_gaussians)
        if phase.beta2 is not None:
            for group in optimizer.param_groups:
                group["betas"] = (group["betas"][0], phase.beta2)  # β1 as the optimizer has it
        hooks.phase_started(phase, done)
        stop = False
        for step in range(first, phase.steps):
            lr = phase.lr_at(step) * hooks.lr_multiple
            for group in optimizer.param_groups:
                group["lr"] = lrs[group["name"]] * lr if group["name"] in phase.train else 0.0
            batch = grow_at.get(step, 0)
            done += 1
            render, value, mse = backward_step(model, optimizer, tgt, keep_render=batch > 0,
                                               hwc=targets.hwc(phase.scale) if big else None, loss=loss,
                                               pixel_sum=pixel_sum, measure=hooks.measure)
            out = StepDone(done, phase, step, lr, value, mse, render)
            hooks.before_update(out)
            optimizer.step()
            if batch:
                grow_batch(out.render, tgt, batch)
                out.grown = batch
            if step % 10 == 0 or step == phase.steps - 1:
                progress(phase.name, done / total)
            if hooks.after_step(out):
                stop = True
                break
        log.phases.append((phase.name, phase.steps - first, time.perf_counter() - t0))
        if stop:
            break
    log.num_gaussians = model.num_gaussians
    return log


def fit(model: GaussianModel, target: torch.Tensor, plan: Sequence[Phase], lrs: dict[str, float], final_count: int,
        generator: torch.Generator, on_progress: Progress | None = None, init_scale: float = 0.6,
        growth_blur: float = 1.0) -> FitLog:
    """Run ``plan`` on ``model`` (changed in place; it grows to ``final_count``) against ``target`` [C, H, W]
    with a new Adam optimizer and the L2 loss: the encoder's fit (:func:`run_plan`)."""
    optimizer = make_optimizer(model, lrs)
    _, h, w = target.shape

    def grow_batch(render: torch.Tensor, tgt: torch.Tensor, count: int) -> None:
        grow(model, optimizer, render, tgt, count, (h, w), generator, init_scale, growth_blur)

    return run_plan(model, optimizer, Targets(target.contiguous()), plan, lrs, grow_batch, final_count,
                    on_progress=on_progress)


def backward_step(model: GaussianModel, optimizer: torch.optim.Optimizer, target: torch.Tensor,
                  keep_render: bool = False, hwc: torch.Tensor | None = None, loss=mean_squared_error,
                  pixel_sum=squared_error_sum, measure: bool = False):
    """The gradients of ``loss`` of ``model`` drawn at ``target``'s size (Adam's step is the caller's). Returns
    (the render if asked or drawn whole, the loss, the clamped render's MSE if ``measure`` else None).

    ``hwc``: ``target`` as [H, W, C], for an image that renders in bands of rows with ``pixel_sum`` (made if
    not given); ``pixel_sum`` None: always whole."""
    h, w = target.shape[1:]
    bands = row_bands(h, w) if pixel_sum is not None else [(0, h)]
    optimizer.zero_grad(set_to_none=True)
    if len(bands) == 1:
        render = model.render(h, w)
        value = loss(render, target)
        value.backward()
        mse = clamped_mse(render, target) if measure else None
    else:
        render = torch.empty_like(target) if keep_render else None
        total, sse = backward_in_bands(model.params(), h, w, model.render_mode, model.topk, model.backend,
                                       target.permute(1, 2, 0).contiguous() if hwc is None else hwc, pixel_sum,
                                       bands, keep=render)
        value, mse = torch.tensor(total), sse / target.numel()
    return (render.detach() if render is not None else None), value, mse


def train_step(model: GaussianModel, optimizer: torch.optim.Optimizer, target: torch.Tensor, **kwargs):
    """:func:`backward_step`, then Adam's step; the same return."""
    out = backward_step(model, optimizer, target, **kwargs)
    optimizer.step()
    return out


def _growth_steps(phase: Phase, start: int, final_count: int) -> dict[int, int]:
    """{step of the phase: Gaussians added after it}: ``grow`` even batches to ``reach`` × final_count."""
    goal = max(start, round(phase.reach * final_count))
    extra = goal - start
    if phase.grow <= 0 or extra <= 0 or phase.steps <= 0:
        return {}
    out: dict[int, int] = {}
    for k in range(phase.grow):
        # batches after steps spread over the first ~80 % of the phase, so the last ones still settle
        at = min(phase.steps - 1, round((k + 1) * 0.8 * phase.steps / phase.grow) - 1)
        out[at] = out.get(at, 0) + extra // phase.grow + (1 if k < extra % phase.grow else 0)
    return out


@torch.no_grad()
def grow(model: GaussianModel, optimizer: torch.optim.Optimizer, render: torch.Tensor, target: torch.Tensor,
         count: int, full_hw: tuple[int, int], generator: torch.Generator, init_scale: float, blur: float,
         residual: bool = False, reset_optimizer: bool = False) -> torch.Tensor:
    """Add ``count`` Gaussians where the blurred error of ``render`` against ``target`` is largest: the
    image's colour there (``residual``: what the render lacks there, for sum blending), isotropic σ from
    the neighbours (as at initialisation), random orientation. Existing Gaussians keep their Adam moments
    unless ``reset_optimizer``. Returns the new positions. The growth rule of the encoder's fit and of
    ``lgi fit`` (:class:`lgi_train.fit.Fitter`)."""
    h, w = target.shape[1:]
    error = (render - target).abs().mean(0)
    density = _blur(error, blur * h / full_hw[0])
    xy = sample_from_density(density.cpu(), count, 0.0, generator).to(model.xy.device)
    color = colors_at(target, xy)
    if residual:
        color = color - colors_at(render, xy)
    everyone = torch.cat([model.xy.detach(), xy])
    scales = scales_from_density(everyone.cpu(), full_hw[0], full_hw[1], init_scale)[-count:].to(model.xy.device)
    rot = (torch.rand(count, generator=generator) * torch.pi).to(model.xy.device)
    model.append(xy, scales, rot, color, optimizer, reset_optimizer)
    return xy


__all__ = ["FitLog", "Hooks", "StepDone", "Targets", "backward_step", "fit", "grow", "learning_rates", "run_plan",
           "scaled_plan", "train_step"]
