"""The fitted object: N 2D Gaussians with position, log-scale, rotation and colour.

Parameters use lgi-gsplat2d's convention: a Gaussian lives in the unit square (x = column / W,
y = row / H), scales are standard deviations in unit-square units (stored as logarithms, so Adam's
steps are relative and scales stay positive), rotations in radians, colours unconstrained (top-k
blending normalizes weights, so colours in [0, 1] give outputs in [0, 1]).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

ATTRIBUTES = ("xy", "log_scale", "rotation", "color")


class _RoundThrough(torch.autograd.Function):
    """Forward: the exact grid value. Backward: the identity (the straight-through estimator)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return q

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # noqa: D102
        return grad, None


def ste_quantize(x: torch.Tensor, bits: int, lo: torch.Tensor | None = None,
                 hi: torch.Tensor | None = None) -> torch.Tensor:
    """Uniform quantization to ``bits`` over [lo, hi] (per-tensor min-max by default), with the
    straight-through estimator: the forward value is exactly on the grid ``lo + i·step``, the
    gradient passes unchanged (Bengio et al. 2013, as Image-GS's ``ste_quantize``)."""
    if bits >= 32:
        return x
    with torch.no_grad():
        lo = x.amin() if lo is None else lo
        hi = x.amax() if hi is None else hi
        step = torch.clamp(hi - lo, min=torch.finfo(x.dtype).tiny) / ((1 << bits) - 1)
        q = torch.round((x.clamp(lo, hi) - lo) / step) * step + lo
    return _RoundThrough.apply(x, q)


@dataclass
class QuantSpec:
    """Bits per attribute for quantization-aware training."""

    position: int = 16
    scale: int = 16
    rotation: int = 16
    color: int = 16


class GaussianModel(nn.Module):
    """N Gaussians; ``render(h, w)`` draws them at any size.

    Args:
        xy: [N, 2] positions in the unit square.
        scales: [N, 2] standard deviations in unit-square units (> 0).
        rotations: [N] angles in radians.
        colors: [N, C].
        render_mode: "topk" or "sum"; topk: K for top-k blending.
    """

    def __init__(self, xy: torch.Tensor, scales: torch.Tensor, rotations: torch.Tensor, colors: torch.Tensor,
                 render_mode: str = "topk", topk: int = 10, backend: str = "auto"):
        super().__init__()
        self.xy = nn.Parameter(xy.detach().clone().float().contiguous())
        self.log_scale = nn.Parameter(torch.log(scales.detach().clone().float()).contiguous())
        self.rotation = nn.Parameter(rotations.detach().clone().float().reshape(-1).contiguous())
        self.color = nn.Parameter(colors.detach().clone().float().contiguous())
        self.render_mode = render_mode
        self.topk = topk
        self.backend = backend
        self.quant: QuantSpec | None = None

    @property
    def num_gaussians(self) -> int:
        return self.xy.shape[0]

    @property
    def channels(self) -> int:
        return self.color.shape[1]

    def params(self) -> dict[str, torch.Tensor]:
        """The rendered parameters, quantized (straight-through) when QAT is on."""
        xy, log_scale, rot, color = self.xy, self.log_scale, self.rotation, self.color
        if self.quant is not None:
            q = self.quant
            xy = ste_quantize(xy, q.position)
            log_scale = ste_quantize(log_scale, q.scale)
            rot = ste_quantize(torch.remainder(rot, torch.pi), q.rotation,
                               torch.zeros((), device=rot.device), torch.full((), torch.pi, device=rot.device))
            color = ste_quantize(color, q.color)
        return {"means": xy, "scales": torch.exp(log_scale), "rotations": rot, "colors": color}

    def render(self, height: int, width: int) -> torch.Tensor:
        """[C, H, W] image."""
        from lgi_gsplat2d import render

        p = self.params()
        img = render(p["means"], p["scales"], p["rotations"], p["colors"], height, width,
                     mode=self.render_mode, k=self.topk, backend=self.backend)
        return img.permute(2, 0, 1)

    def render_rows(self, height: int, width: int, rows: tuple[int, int]) -> torch.Tensor:
        """[y1 - y0, W, C]: rows ``(y0, y1)`` of the height x width image (:mod:`lgi_train.bands`)."""
        from lgi_gsplat2d import render_rows

        p = self.params()
        return render_rows(p["means"], p["scales"], p["rotations"], p["colors"], height, width, rows,
                           mode=self.render_mode, k=self.topk, backend=self.backend)

    @torch.no_grad()
    def append(self, xy: torch.Tensor, scales: torch.Tensor, rotations: torch.Tensor, colors: torch.Tensor,
               optimizer: torch.optim.Adam | None = None, reset_optimizer: bool = False) -> None:
        """Add Gaussians; existing Gaussians keep their Adam moments unless ``reset_optimizer``."""
        new = {"xy": xy.float(), "log_scale": torch.log(scales.float()), "rotation": rotations.float().reshape(-1),
               "color": colors.float()}
        for name in ATTRIBUTES:
            old = getattr(self, name)
            grown = nn.Parameter(torch.cat([old.detach(), new[name].to(old.device)]).contiguous())
            if optimizer is not None:
                _swap_in_optimizer(optimizer, old, grown, reset_optimizer)
            setattr(self, name, grown)

    @torch.no_grad()
    def keep(self, mask: torch.Tensor, optimizer: torch.optim.Adam | None = None) -> None:
        """Keep only the Gaussians where ``mask`` [N] is true (pruning)."""
        for name in ATTRIBUTES:
            old = getattr(self, name)
            kept = nn.Parameter(old.detach()[mask].contiguous())
            if optimizer is not None:
                state = optimizer.state.pop(old, None)
                _replace_param(optimizer, old, kept)
                if state:
                    optimizer.state[kept] = {k: (v[mask].clone() if torch.is_tensor(v) and v.dim() and
                                                 v.shape[0] == mask.shape[0] else v) for k, v in state.items()}
            setattr(self, name, kept)

    def state_for_checkpoint(self) -> dict:
        return {"xy": self.xy.detach().cpu(), "scales": torch.exp(self.log_scale.detach()).cpu(),
                "rotations": self.rotation.detach().cpu(), "colors": self.color.detach().cpu(),
                "render_mode": self.render_mode, "topk": self.topk}

    @classmethod
    def from_checkpoint(cls, state: dict, backend: str = "auto", device: str = "cpu") -> GaussianModel:
        model = cls(state["xy"], state["scales"], state["rotations"], state["colors"],
                    render_mode=state["render_mode"], topk=state["topk"], backend=backend)
        return model.to(device)


def _replace_param(optimizer: torch.optim.Optimizer, old: torch.Tensor, new: torch.Tensor) -> None:
    for group in optimizer.param_groups:
        for i, p in enumerate(group["params"]):
            if p is old:
                group["params"][i] = new
                return
    raise KeyError("parameter not found in the optimizer")


def _swap_in_optimizer(optimizer: torch.optim.Adam, old: torch.Tensor, new: torch.Tensor, reset: bool) -> None:
    state = optimizer.state.pop(old, None)
    _replace_param(optimizer, old, new)
    if state and not reset:
        grown = {}
        for k, v in state.items():
            if torch.is_tensor(v) and v.dim() and v.shape[0] == old.shape[0]:
                pad = torch.zeros((new.shape[0] - old.shape[0], *v.shape[1:]), dtype=v.dtype, device=v.device)
                grown[k] = torch.cat([v, pad])
            else:
                grown[k] = v.clone() if torch.is_tensor(v) else v
        optimizer.state[new] = grown


def make_optimizer(model: GaussianModel, lrs: dict[str, float], beta2: float = 0.999) -> torch.optim.Adam:
    """Adam over the model's four parameter groups (named as ``lrs``' keys), β1 = 0.9 and ``beta2``."""
    groups = [{"params": [getattr(model, name)], "lr": lrs[name], "name": name} for name in ATTRIBUTES]
    return torch.optim.Adam(groups, eps=1e-15, betas=(0.9, beta2))
