"""Compressing a fitted set into a ``.lgi`` file (c3dgs's pipeline, adapted to 2D; docs/codec.md).

1. sensitivity of every parameter (:mod:`.sensitivity`);
2. pruning of the least important Gaussians (optional), then a short re-fit;
3. sensitivity-aware vector quantization: importance-weighted K-means codebooks for shape — in the
   log-Euclidean features (m, u, v) of lgi_dictco.gauss.quant — and for colour; the most important
   Gaussians may keep their own, scalar-quantized values;
4. quantization-aware fine-tuning: positions on the fixed-point grid, codebook entries and own
   values on their grids, all with the straight-through estimator, codebook entries learned;
5. Morton ordering and entropy coding (lgi_dictco.gauss).

The encoder's final image is rendered from its own decoded bytes, so it is exactly what a decoder
on the same device shows.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from lgi_dictco.gauss.torch_quant import (
    cell_centre,
    cell_index,
    class_steps,
    features_to_shape,
    grid_index,
    opponent,
    shape_features,
)
from lgi_dictco.gauss.torch_quant import class_multiplier as _multiplier
from lgi_train.compress.sensitivity import calc_sensitivity
from lgi_train.compress.vq import weighted_kmeans
from lgi_train.model import GaussianModel, _RoundThrough


@dataclass
class CodecSettings:
    """How a fitted set is quantized and coded.

    Attributes:
        position_step_px: grid cell of positions, in pixels of the stored size.
        color_space: "opp" (orthonormal opponent: decorrelated, same RGB error per step) or "rgb".
        color_step: quantizer step of colour values (in ``color_space``).
        shape_step: quantizer steps of the shape features (m, u, v): log-area and anisotropy.
        shape_codebook, color_codebook: codebook sizes (0: every Gaussian has its own values).
        shape_own_fraction, color_own_fraction: with a codebook, the share of the most important
            Gaussians that keep their own values (c3dgs's ``*_importance_include``, as a fraction).
        precision_classes: number of precision classes K (1: one grid for every Gaussian). Gaussians
            are ranked by the curvature of the error in their parameters; each class gets its own
            quantizer steps, finer where an error costs more (docs/codec.md).
        class_width: width of a class in powers of 4 of the curvature (1: a step ratio of 2).
        finetune_steps: quantization-aware fine-tuning steps (0: none).
        rate_db: the rate term's price λ in dB per bit per pixel (:mod:`.rate`; 0: distortion only).
        finetune_lr_scale: multiplies the fit's learning rates during fine-tuning. 2 rather than the
            0.5 of before: +0.25 dB at equal rate on four Kodak images at 0.5 bpp (0.25: -0.18, 1: +0.15,
            4: worse than 2; docs/codec.md, "Fine-tuning's learning rate"). The likely reason: through
            the straight-through rounding a value changes its code only after moving half a quantizer
            step, and Adam moves it about one learning rate per step (colour: 0.0025 at 0.5, a tenth of
            its 0.024 step).
        finetune_shape_lr: the fine-tuning's learning rate of the shape features (m, u, v); None: the
            fit's log-scale rate × ``finetune_lr_scale``, like the others.
    """

    position_step_px: float = 0.5
    color_space: str = "opp"
    color_step: float = 0.024
    shape_step: tuple[float, float, float] = (0.16, 0.16, 0.16)
    shape_codebook: int = 0
    color_codebook: int = 0
    shape_own_fraction: float = 0.0
    color_own_fraction: float = 0.0
    precision_classes: int = 4
    class_width: float = 1.0
    finetune_steps: int = 400
    rate_db: float = 0.0
    finetune_lr_scale: float = 2.0
    finetune_shape_lr: float | None = None
    kmeans_iters: int = 25
    extra: dict = field(default_factory=dict)


def ste_grid(x: torch.Tensor, lo: torch.Tensor, step: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Snap to lo + q·step, q in 0..levels-1, exactly; straight-through gradient."""
    with torch.no_grad():
        snapped = lo + grid_index(x, lo, step, levels) * step
    return _RoundThrough.apply(x, snapped)


def position_bits(size: int, step_px: float) -> int:
    return max(1, min(20, math.ceil(math.log2(max(1.0, size / step_px)))))


@dataclass
class PrecisionClasses:
    """Which Gaussian is in which precision class, and each class's step exponents.

    Attributes:
        classes: [N] class ids (0 = least sensitive).
        exps: [3, K] step exponents e (step × 2^(e/2)) for the groups position, shape, colour.
    """

    classes: torch.Tensor
    exps: torch.Tensor

    @property
    def k(self) -> int:
        return self.exps.shape[1]


def assign_classes(curvature: torch.Tensor | None, n: int, k: int, width: float = 1.0) -> PrecisionClasses:
    """Rank Gaussians into ``k`` classes by curvature and give each class its steps.

    For uniform quantization a value with step Δ costs about α·Δ²/12 of squared error and −log2 Δ
    bits, α being its curvature (:func:`~lgi_train.compress.sensitivity.calc_curvature`). At a given
    rate the error is smallest when every value costs the same error per bit, i.e. Δ ∝ α^(−1/2).
    A Gaussian's class is the geometric mean of its three groups' curvatures (each relative to the
    group's median) in steps of 4^width; a class's step in each group follows the mean curvature of
    its members, normalized so the Gaussians' mean log step — and so roughly the rate — stays that
    of one common grid.
    """
    from lgi_dictco.gauss.format import MAX_CLASS_EXP

    if curvature is None or k <= 1 or n == 0:
        return PrecisionClasses(torch.zeros(n, dtype=torch.long), torch.zeros(3, 1, dtype=torch.long))
    a = curvature.double().clamp_min(1e-30)
    la = torch.log(a) - torch.log(a).median(0).values
    score = la.mean(1) / (math.log(4.0) * width)
    classes = torch.clamp(torch.floor(score + k / 2), 0, k - 1).long()
    exps = torch.zeros(3, k, dtype=torch.long)
    present = torch.bincount(classes, minlength=k) > 0
    for g in range(3):
        mean = torch.zeros(k, dtype=torch.float64).index_add_(0, classes, a[:, g])
        mean = mean / torch.bincount(classes, minlength=k).clamp_min(1)
        log_mean = torch.log2(mean.clamp_min(1e-30))
        ref = log_mean[classes].mean()
        e = torch.round(ref - log_mean).clamp(-MAX_CLASS_EXP, MAX_CLASS_EXP).long()
        exps[g] = torch.where(present, e, torch.zeros_like(e))
    return PrecisionClasses(classes, exps)


class _Group(nn.Module):
    """One attribute group during fine-tuning: a codebook plus own values, on fixed per-class grids."""

    def __init__(self, values: torch.Tensor, weights: torch.Tensor, k: int, step: torch.Tensor,
                 own_fraction: float, iters: int, generator: torch.Generator,
                 classes: torch.Tensor | None = None, exps: torch.Tensor | None = None):
        super().__init__()
        from lgi_dictco.gauss.format import MAX_CLASS_EXP, MAX_LEVELS

        n, d = values.shape
        classes = torch.zeros(n, dtype=torch.long) if classes is None else classes.long()
        exps = torch.zeros(1, dtype=torch.long) if exps is None else exps.clone().long()
        lo = values.amin(0) if n else torch.zeros(d)
        span = (values.amax(0) - lo) if n else torch.zeros(d)
        # Every value of a group has at most 4096 levels in its class: coarsen a class that needs more.
        step = torch.maximum(step.float(), span / (MAX_LEVELS - 1) * 1.0001)
        for c in range(exps.numel()):
            while exps[c] < MAX_CLASS_EXP and bool((span / (step * _multiplier(exps[c])) >= MAX_LEVELS - 1).any()):
                exps[c] += 1
        steps = class_steps(step, exps)  # [K, D]: exactly the float32 steps the decoder computes
        levels = (torch.floor(span[None] / steps).long() + 2).clamp(max=MAX_LEVELS)
        self.register_buffer("lo", lo.float())
        self.register_buffer("base_step", step.float())
        self.register_buffer("exps", exps)
        self.register_buffer("steps", steps)
        self.register_buffer("levels", levels.float())  # [K, D]
        self.register_buffer("classes", classes)
        n_own = n if k == 0 else min(n, int(round(own_fraction * n)))
        own = torch.zeros(n, dtype=torch.bool)
        if n_own:
            own[torch.argsort(weights, descending=True, stable=True)[:n_own]] = True
        self.register_buffer("own", own)
        in_cb = ~own
        if k > 0 and in_cb.any():
            centers, assign = weighted_kmeans(values[in_cb], weights[in_cb], k, iters, generator)
        else:
            centers, assign = values[:0], torch.zeros(0, dtype=torch.long)
        idx = torch.full((n,), centers.shape[0], dtype=torch.long)
        idx[in_cb] = assign
        self.register_buffer("idx", idx)
        self.codebook = nn.Parameter(centers.float().clone())
        self.own_values = nn.Parameter(values[own].float().clone())
        # Constant during fine-tuning, so gathered once: each own value's class, step and levels, and
        # where every Gaussian's value sits in [codebook entries, own values].
        own_cls = classes[own]
        self.register_buffer("own_classes", own_cls)
        self.register_buffer("own_steps", steps[own_cls])
        self.register_buffer("own_levels", self.levels[own_cls])
        gather = idx.clone()
        gather[own] = self.k + torch.arange(n_own)
        self.register_buffer("gather", gather)

    @property
    def k(self) -> int:
        return self.codebook.shape[0]

    def _grids(self):
        """(lo, step, levels) for the codebook (class 0's grid) and for the own values (their classes)."""
        return ((self.lo, self.steps[0], self.levels[0]), (self.lo, self.own_steps, self.own_levels))

    def values(self) -> torch.Tensor:
        own = ste_grid(self.own_values, self.lo, self.own_steps, self.own_levels)
        if self.k == 0:
            return own  # every value is an own value, in the Gaussians' order
        full = torch.cat([ste_grid(self.codebook, self.lo, self.steps[0], self.levels[0]), own])
        return full[self.gather]

    def keep_only(self, keep: torch.Tensor) -> _Group:
        """A copy with only the Gaussians ``keep`` (ascending indices), on the same grids and codebook."""
        out = copy.deepcopy(self)
        own = self.own[keep]
        rank = torch.cumsum(self.own.long(), 0) - 1  # an own value's row in own_values
        rows = rank[keep][own]
        out.own, out.idx, out.classes = own, self.idx[keep], self.classes[keep]
        out.own_values = nn.Parameter(self.own_values.detach()[rows].clone())
        out.own_classes, out.own_steps, out.own_levels = self.own_classes[rows], self.own_steps[rows], self.own_levels[rows]
        gather = out.idx.clone()
        gather[own] = self.k + torch.arange(rows.shape[0], device=gather.device)
        out.gather = gather
        return out

    def to_coding(self):
        from lgi_dictco.gauss.format import GroupCoding

        def ints(x: torch.Tensor, grid) -> np.ndarray:
            return grid_index(x.detach(), *grid).long().cpu().numpy()

        cb_grid, own_grid = self._grids()
        return GroupCoding(lo=self.lo.cpu().numpy(), step=self.base_step.cpu().numpy(),
                           levels=self.levels.long().cpu().numpy(), codebook=ints(self.codebook, cb_grid),
                           indices=self.idx.cpu().numpy() if self.k else None,
                           scalars=ints(self.own_values, own_grid), class_exp=self.exps.cpu().numpy())


class QuantizedSet(nn.Module):
    """A fitted set in its coded form, differentiable for fine-tuning (straight-through)."""

    def __init__(self, model: GaussianModel, height: int, width: int, settings: CodecSettings,
                 importance=None, generator: torch.Generator | None = None):
        super().__init__()
        g = generator or torch.Generator().manual_seed(0)
        self.height, self.width = height, width
        self.render_mode, self.topk, self.backend = model.render_mode, model.topk, model.backend
        self.xy = nn.Parameter(model.xy.detach().clamp(0, 1 - 1e-7).clone())
        if importance is None:
            importance = calc_sensitivity(model, height, width)
        s = settings
        pc = assign_classes(importance.curvature, model.num_gaussians, s.precision_classes, s.class_width)
        self.register_buffer("classes", pc.classes)
        # Position grids are powers of two: each class's step, rounded to its grid; the finest class
        # sets (bx, by) and the others drop bits from it.
        bits_x = [position_bits(width, s.position_step_px * _multiplier(e)) for e in pc.exps[0].tolist()]
        bits_y = [position_bits(height, s.position_step_px * _multiplier(e)) for e in pc.exps[0].tolist()]
        self.bits = (max(bits_x), max(bits_y))
        self.class_drop = tuple(min(self.bits[0] - b, min(self.bits) - 1) for b in bits_x)
        drop = torch.tensor(self.class_drop, dtype=torch.long)[pc.classes]
        self.register_buffer("res", torch.stack([2.0 ** (self.bits[0] - drop), 2.0 ** (self.bits[1] - drop)], 1))
        feats = shape_features(model.log_scale.detach(), model.rotation.detach()).cpu()
        channels = model.color.shape[1]
        self.color_space = s.color_space if channels == 3 else ("gray" if channels == 1 else "rgb")
        self.register_buffer("to_rgb", opponent() if self.color_space == "opp" else torch.eye(channels))
        colors = model.color.detach().cpu() @ self.to_rgb.t()  # rgb → coded space
        self.shape = _Group(feats, importance.shape_importance.detach().cpu(), s.shape_codebook,
                            torch.tensor(s.shape_step), s.shape_own_fraction, s.kmeans_iters, g,
                            pc.classes, pc.exps[1])
        self.color = _Group(colors, importance.color_importance.detach().cpu(), s.color_codebook,
                            torch.full((channels,), s.color_step), s.color_own_fraction, s.kmeans_iters, g,
                            pc.classes, pc.exps[2])

    @property
    def num_gaussians(self) -> int:
        return self.xy.shape[0]

    def keep_only(self, keep: torch.Tensor) -> QuantizedSet:
        """A copy with only the Gaussians ``keep`` (ascending indices): the others dropped, the rest on
        the same grids, in the same precision classes, with the same codebooks (nothing re-quantized)."""
        keep = keep.to(self.xy.device)
        out = copy.deepcopy(self, {id(self.shape): None, id(self.color): None})  # the groups: cut below, once
        out.xy = nn.Parameter(self.xy.detach()[keep].clone())
        out.classes, out.res = self.classes[keep], self.res[keep]
        out.shape, out.color = self.shape.keep_only(keep), self.color.keep_only(keep)
        return out

    def positions(self) -> torch.Tensor:
        res = self.res.to(self.xy)
        with torch.no_grad():
            snapped = cell_centre(cell_index(self.xy, res), res)
        return _RoundThrough.apply(self.xy, snapped)

    def params(self) -> dict[str, torch.Tensor]:
        """The rendered parameters (means, scales, rotations, colors), on their grids (straight-through)."""
        scales, rot = features_to_shape(self.shape.values())
        return {"means": self.positions(), "scales": scales, "rotations": rot, "colors": self.rgb_colors()}

    def render(self, height: int | None = None, width: int | None = None) -> torch.Tensor:
        from lgi_gsplat2d import render

        p = self.params()
        img = render(p["means"], p["scales"], p["rotations"], p["colors"], height or self.height,
                     width or self.width, mode=self.render_mode, k=self.topk, backend=self.backend)
        return img.permute(2, 0, 1)

    def rgb_colors(self) -> torch.Tensor:
        return self.color.values() @ self.to_rgb

    def to_payload(self):
        from lgi_dictco.gauss.format import LgiHeader, LgiPayload

        res = self.res.cpu()
        q = cell_index(self.xy.detach().cpu(), res).long().numpy()
        channels = self.color.codebook.shape[1]
        header = LgiHeader(width=self.width, height=self.height, channels=channels,
                           color_space=self.color_space, render_mode=self.render_mode,
                           topk=self.topk, num_gaussians=q.shape[0], pos_bits=self.bits,
                           class_drop=self.class_drop)
        return LgiPayload(header=header, positions=q, shape=self.shape.to_coding(), color=self.color.to_coding(),
                          classes=self.classes.cpu().numpy() if len(self.class_drop) > 1 else None)


def finetune(qset: QuantizedSet, target: torch.Tensor, steps: int, lrs: dict[str, float], loss_fn,
             on_step=None, rate_db: float = 0.0, pixel_sum=None) -> None:
    """Quantization-aware fine-tuning of positions, codebooks and own values.

    ``rate_db`` > 0 adds the rate term (:mod:`.rate`): a bit per pixel of shape and colour values is
    kept only where it buys at least that many dB. ``pixel_sum``: ``loss_fn`` as a sum over values
    (:func:`lgi_train.losses.pixel_sum_for`), if it is one; then an image above
    :data:`lgi_train.bands.BAND_PIXELS` pixels is fine-tuned in bands of rows.
    """
    if steps <= 0:
        return
    from lgi_train.bands import backward_in_bands, row_bands
    from lgi_train.compress.rate import SetRate, rate_weighted

    bands = row_bands(qset.height, qset.width) if pixel_sum is not None else [(0, qset.height)]
    target_hwc = target.permute(1, 2, 0).contiguous() if len(bands) > 1 else None

    rate = SetRate(qset) if rate_db > 0 else None
    groups = [{"params": [qset.xy], "lr": lrs["xy"]},
              {"params": [qset.shape.codebook, qset.shape.own_values], "lr": lrs["shape"]},
              {"params": [qset.color.codebook, qset.color.own_values], "lr": lrs["color"]}]
    opt = torch.optim.Adam(groups, eps=1e-15)
    for step in range(steps):
        # Cosine decay: the last steps settle on the grid instead of hopping between cells.
        for grp, base in zip(opt.param_groups, (lrs["xy"], lrs["shape"], lrs["color"])):
            grp["lr"] = base * 0.5 * (1 + math.cos(math.pi * step / steps))
        opt.zero_grad(set_to_none=True)
        if target_hwc is None:
            loss = loss_fn(qset.render(), target)
            if rate is not None:
                loss = rate_weighted(loss, rate.bpp(), rate_db)
            loss.backward()
            value = float(loss.detach())
        else:  # the distortion band by band, then the rate term with the whole distortion as its weight
            value, _ = backward_in_bands(qset.params(), qset.height, qset.width, qset.render_mode, qset.topk,
                                         qset.backend, target_hwc, pixel_sum, bands)
            if rate is not None:  # the distortion is a constant here: only the rate term has a graph
                total = rate_weighted(torch.tensor(value), rate.bpp(), rate_db)
                total.backward()
                value = float(total.detach())
        opt.step()
        if on_step:
            on_step(step + 1, value)


def decode_to_tensors(data: bytes, device: str | torch.device = "cpu") -> tuple[object, dict[str, torch.Tensor]]:
    """Bytes → (payload, float32 parameters on ``device``) through the one decoder, :func:`lgi_dictco.gauss.decode`."""
    from lgi_dictco.gauss import decode

    decoded = decode(data)
    return decoded.payload, {k: torch.from_numpy(v).to(device) for k, v in decoded.params.items()}


def render_decoded(header, params: dict[str, torch.Tensor], height: int, width: int,
                   backend: str = "auto") -> torch.Tensor:
    """[C, H, W] in [0, 1] (clamped), as `lgi decode` draws it (:func:`lgi_dictco.gauss.render`; above
    :data:`lgi_train.bands.BAND_PIXELS` pixels with the decoder's own :func:`lgi_dictco.gauss.render_bands`,
    equal to float rounding)."""
    from lgi_dictco.gauss import render, render_bands
    from lgi_gsplat2d import project_gaussians_2d_scale_rot, rasterize_rows, row_spans
    from lgi_gsplat2d import render as rasterize
    from lgi_train.bands import row_bands

    device = params["means"].device
    bands = row_bands(height, width)
    if len(bands) == 1:
        return render(params, header, width, height, rasterize=rasterize, device=device, backend=backend)
    out = torch.empty(header.channels, height, width, device=device)
    for y0, band in render_bands(params, header, width, height, bands, project=project_gaussians_2d_scale_rot,
                                 row_spans=row_spans, rasterize_rows=rasterize_rows, device=device,
                                 backend=backend):
        out[:, y0:y0 + band.shape[1]] = band
    return out
