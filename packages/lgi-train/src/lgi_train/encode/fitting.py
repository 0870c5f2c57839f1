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
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch

from lgi_train.bands import backward_in_bands, row_bands
from lgi_train.encode.tuning import Phase, Tuning
from lgi_train.fit import _blur, downsample
from lgi_train.init import colors_at, sample_from_density, scales_from_density
from lgi_train.losses import mean_squared_error, squared_error_sum
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


def fit(model: GaussianModel, target: torch.Tensor, plan: Sequence[Phase], lrs: dict[str, float], final_count: int,
        generator: torch.Generator, on_progress: Progress | None = None, init_scale: float = 0.6,
        growth_blur: float = 1.0) -> FitLog:
    """Run ``plan`` on ``model`` (changed in place; it grows to ``final_count``) against ``target`` [C, H, W]."""
    progress = on_progress or (lambda name, frac: None)
    targets = Targets(target.contiguous())
    _, h, w = target.shape
    optimizer = make_optimizer(model, lrs)
    total = max(1, sum(p.steps for p in plan))
    done = 0
    log = FitLog()
    for phase in plan:
        t0 = time.perf_counter()
        tgt = targets.at(phase.scale)
        big = len(row_bands(*tgt.shape[1:])) > 1
        grow_at = _growth_steps(phase, model.num_gaussians, final_count)
        for group in optimizer.param_groups:
            group["betas"] = (group["betas"][0], phase.beta2)  # β1 as the optimizer has it
        for step in range(phase.steps):
            for group in optimizer.param_groups:
                group["lr"] = lrs[group["name"]] * phase.lr_at(step) if group["name"] in phase.train else 0.0
            batch = grow_at.get(step, 0)
            render = train_step(model, optimizer, tgt, keep_render=batch > 0, hwc=targets.hwc(phase.scale)
                                if big else None)
            if batch:
                grow(model, optimizer, render, tgt, batch, (h, w), generator, init_scale, growth_blur)
            done += 1
            if step % 10 == 0 or step == phase.steps - 1:
                progress(phase.name, done / total)
        log.phases.append((phase.name, phase.steps, time.perf_counter() - t0))
    log.num_gaussians = model.num_gaussians
    return log


def train_step(model: GaussianModel, optimizer: torch.optim.Optimizer, target: torch.Tensor,
               keep_render: bool = False, hwc: torch.Tensor | None = None) -> torch.Tensor | None:
    """One Adam step of the L2 loss of ``model`` drawn at ``target``'s size; the render if asked.
    ``hwc``: ``target`` as [H, W, C], for an image that renders in bands of rows (made if not given)."""
    h, w = target.shape[1:]
    bands = row_bands(h, w)
    optimizer.zero_grad(set_to_none=True)
    if len(bands) == 1:
        render = model.render(h, w)
        mean_squared_error(render, target).backward()
    else:
        render = torch.empty_like(target) if keep_render else None
        backward_in_bands(model.params(), h, w, model.render_mode, model.topk, model.backend,
                          target.permute(1, 2, 0).contiguous() if hwc is None else hwc, squared_error_sum, bands,
                          keep=render)
    optimizer.step()
    return render.detach() if keep_render and render is not None else None


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


__all__ = ["FitLog", "Targets", "fit", "grow", "learning_rates", "scaled_plan", "train_step"]
