"""Compressing a fitted set into a ``.lgi`` file (c3dgs's pipeline, adapted to 2D; docs/codec.md).

1. sensitivity of every parameter (:mod:`.sensitivity`);
2. pruning of the least important Gaussians (optional), then a short re-fit;
3. sensitivity-aware vector quantization: importance-weighted K-means codebooks for shape — in the
   log-Euclidean features (m, u, v) of lgi_dictco.lgi_format — and for colour; the most important
   Gaussians may keep their own, scalar-quantized values;
4. quantization-aware fine-tuning: positions on the fixed-point grid, codebook entries and own
   values on their grids, all with the straight-through estimator, codebook entries learned;
5. Morton ordering and entropy coding (lgi_dictco.lgi_format).

The encoder's final image is rendered from its own decoded bytes, so it is exactly what a decoder
on the same device shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

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
        finetune_steps: quantization-aware fine-tuning steps (0: none).
        finetune_lr_scale: multiplies the fit's learning rates during fine-tuning.
    """

    position_step_px: float = 0.5
    color_space: str = "opp"
    color_step: float = 0.03
    shape_step: tuple[float, float, float] = (0.2, 0.2, 0.2)
    shape_codebook: int = 0
    color_codebook: int = 0
    shape_own_fraction: float = 0.0
    color_own_fraction: float = 0.0
    finetune_steps: int = 400
    finetune_lr_scale: float = 0.5
    kmeans_iters: int = 25
    extra: dict = field(default_factory=dict)


def ste_grid(x: torch.Tensor, lo: torch.Tensor, step: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Snap to lo + q·step, q in 0..levels-1, exactly; straight-through gradient."""
    with torch.no_grad():
        q = torch.minimum(torch.clamp(torch.round((x - lo) / step), min=0), levels - 1)
        snapped = lo + q * step
    return _RoundThrough.apply(x, snapped)


def position_bits(size: int, step_px: float) -> int:
    return max(1, min(20, math.ceil(math.log2(max(1.0, size / step_px)))))


def shape_features(log_scale: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """(log σ₁, log σ₂, θ) → log-Euclidean features (m, u, v), differentiable."""
    m = log_scale[:, 0] + log_scale[:, 1]
    a = log_scale[:, 0] - log_scale[:, 1]
    return torch.stack([m, a * torch.cos(2 * rotation), a * torch.sin(2 * rotation)], 1)


def features_to_shape(feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(m, u, v) → (scales [N, 2], rotations [N]); safe gradients at isotropy (u = v = 0)."""
    m, u, v = feat[:, 0], feat[:, 1], feat[:, 2]
    a2 = u * u + v * v
    iso = a2 < 1e-20
    a = torch.sqrt(torch.where(iso, torch.ones_like(a2), a2)) * (~iso)
    theta = 0.5 * torch.atan2(v, torch.where(iso, torch.ones_like(u), u))
    return torch.exp(torch.stack([(m + a) * 0.5, (m - a) * 0.5], 1)), theta


class _Group(nn.Module):
    """One attribute group during fine-tuning: a codebook plus own values, on one fixed grid."""

    def __init__(self, values: torch.Tensor, weights: torch.Tensor, k: int, step: torch.Tensor,
                 own_fraction: float, iters: int, generator: torch.Generator):
        super().__init__()
        from lgi_dictco.lgi_format import MAX_LEVELS

        n, d = values.shape
        lo = values.amin(0) if n else torch.zeros(d)
        span = (values.amax(0) - lo) if n else torch.zeros(d)
        step = torch.maximum(step.float(), span / (MAX_LEVELS - 1) * 1.0001)  # at most 4096 levels
        # Centre the range on the grid so neither end is clipped by float rounding.
        levels = torch.floor(span / step).long() + 2
        lo = lo - (levels.float() - 1 - span / step) * step / 2
        self.register_buffer("lo", lo.float())
        self.register_buffer("step", step.float())
        self.register_buffer("levels", levels.clamp(max=MAX_LEVELS).float())
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

    @property
    def k(self) -> int:
        return self.codebook.shape[0]

    def values(self) -> torch.Tensor:
        grid = (self.lo, self.step, self.levels)
        full = torch.cat([ste_grid(self.codebook, *grid), ste_grid(self.own_values, *grid)])
        gather = self.idx.clone()
        gather[self.own] = self.k + torch.arange(int(self.own.sum()), device=self.idx.device)
        return full[gather]

    def to_coding(self):
        from lgi_dictco.lgi_format import GroupCoding

        def ints(x: torch.Tensor) -> np.ndarray:
            q = torch.round((x.detach() - self.lo) / self.step)
            return torch.minimum(q.clamp(min=0), self.levels - 1).long().cpu().numpy()

        return GroupCoding(lo=self.lo.cpu().numpy(), step=self.step.cpu().numpy(),
                           levels=self.levels.long().cpu().numpy(), codebook=ints(self.codebook),
                           indices=self.idx.cpu().numpy() if self.k else None, scalars=ints(self.own_values))


class QuantizedSet(nn.Module):
    """A fitted set in its coded form, differentiable for fine-tuning (straight-through)."""

    def __init__(self, model: GaussianModel, height: int, width: int, settings: CodecSettings,
                 importance=None, generator: torch.Generator | None = None):
        super().__init__()
        g = generator or torch.Generator().manual_seed(0)
        self.height, self.width = height, width
        self.render_mode, self.topk, self.backend = model.render_mode, model.topk, model.backend
        self.bits = (position_bits(width, settings.position_step_px), position_bits(height, settings.position_step_px))
        self.xy = nn.Parameter(model.xy.detach().clamp(0, 1 - 1e-7).clone())
        if importance is None:
            importance = calc_sensitivity(model, height, width)
        feats = shape_features(model.log_scale.detach(), model.rotation.detach()).cpu()
        s = settings
        channels = model.color.shape[1]
        self.color_space = s.color_space if channels == 3 else ("gray" if channels == 1 else "rgb")
        from lgi_dictco.lgi_format import OPPONENT

        self.register_buffer("to_rgb", torch.from_numpy(OPPONENT.copy()) if self.color_space == "opp" else
                             torch.eye(channels))
        colors = model.color.detach().cpu() @ self.to_rgb.t()  # rgb → coded space
        self.shape = _Group(feats, importance.shape_importance.detach().cpu(), s.shape_codebook,
                            torch.tensor(s.shape_step), s.shape_own_fraction, s.kmeans_iters, g)
        self.color = _Group(colors, importance.color_importance.detach().cpu(), s.color_codebook,
                            torch.full((channels,), s.color_step), s.color_own_fraction, s.kmeans_iters, g)

    def positions(self) -> torch.Tensor:
        res = torch.tensor([1 << self.bits[0], 1 << self.bits[1]], dtype=self.xy.dtype, device=self.xy.device)
        with torch.no_grad():
            q = torch.minimum(torch.floor(self.xy.clamp(0, 1) * res), res - 1)
            snapped = (q + 0.5) / res
        return _RoundThrough.apply(self.xy, snapped)

    def render(self, height: int | None = None, width: int | None = None) -> torch.Tensor:
        from lgi_gsplat2d import render

        scales, rot = features_to_shape(self.shape.values())
        img = render(self.positions(), scales, rot, self.rgb_colors(), height or self.height,
                     width or self.width, mode=self.render_mode, k=self.topk, backend=self.backend)
        return img.permute(2, 0, 1)

    def rgb_colors(self) -> torch.Tensor:
        return self.color.values() @ self.to_rgb

    def to_payload(self):
        from lgi_dictco.lgi_format import LgiHeader, LgiPayload

        res = torch.tensor([1 << self.bits[0], 1 << self.bits[1]], dtype=self.xy.dtype)
        q = torch.minimum(torch.floor(self.xy.detach().cpu().clamp(0, 1) * res), res - 1).long().numpy()
        channels = self.color.codebook.shape[1]
        header = LgiHeader(width=self.width, height=self.height, channels=channels,
                           color_space=self.color_space, render_mode=self.render_mode,
                           topk=self.topk, num_gaussians=q.shape[0], pos_bits=self.bits)
        return LgiPayload(header=header, positions=q, shape=self.shape.to_coding(), color=self.color.to_coding())


def finetune(qset: QuantizedSet, target: torch.Tensor, steps: int, lrs: dict[str, float], loss_fn,
             on_step=None) -> None:
    """Quantization-aware fine-tuning of positions, codebooks and own values."""
    if steps <= 0:
        return
    groups = [{"params": [qset.xy], "lr": lrs["xy"]},
              {"params": [qset.shape.codebook, qset.shape.own_values], "lr": lrs["shape"]},
              {"params": [qset.color.codebook, qset.color.own_values], "lr": lrs["color"]}]
    opt = torch.optim.Adam(groups, eps=1e-15)
    for step in range(steps):
        # Cosine decay: the last steps settle on the grid instead of hopping between cells.
        for grp, base in zip(opt.param_groups, (lrs["xy"], lrs["shape"], lrs["color"])):
            grp["lr"] = base * 0.5 * (1 + math.cos(math.pi * step / steps))
        loss = loss_fn(qset.render(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if on_step:
            on_step(step + 1, float(loss.detach()))


def decode_to_tensors(data: bytes, device: str | torch.device = "cpu") -> tuple[object, dict[str, torch.Tensor]]:
    """Bytes → (payload, float32 parameters on ``device``): the decoder's view, used by the encoder too."""
    from lgi_dictco.lgi_format import decode_lgi, dequantize

    payload = decode_lgi(data)
    params = {k: torch.from_numpy(v).to(device) for k, v in dequantize(payload).items()}
    return payload, params


def render_decoded(header, params: dict[str, torch.Tensor], height: int, width: int,
                   backend: str = "auto") -> torch.Tensor:
    """[C, H, W] in [0, 1] (clamped), exactly as `lgi decode` draws it."""
    from lgi_gsplat2d import render

    if params["means"].shape[0] == 0:
        return torch.zeros(header.channels, height, width)
    img = render(params["means"], params["scales"], params["rotations"], params["colors"], height, width,
                 mode=header.render_mode, k=header.topk, backend=backend)
    return img.permute(2, 0, 1).clamp(0, 1)
