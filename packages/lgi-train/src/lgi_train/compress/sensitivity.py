"""Parameter sensitivity of a fitted set (c3dgs ``calc_importance``, adapted to one 2D image).

The rendered image is differentiated channel by channel — ∂(Σ_p I_c(p))/∂θ — and the absolute
values are accumulated over channels, so a parameter's sensitivity says how much output it
controls. For top-k blending the colour sensitivity of Gaussian i is Σ_p wᵢ(p) / (Σ_j w_j(p) + ε)
over the pixels where it is among the K: its effective footprint in pixels. A Gaussian's
importance is the maximum over its components (c3dgs), per attribute group.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lgi_train.model import GaussianModel


@dataclass
class Sensitivity:
    color: torch.Tensor      # [N, C] |∂ΣI/∂colour|, per pixel of the image
    shape: torch.Tensor      # [N, 3] |∂ΣI/∂(log σ₁, log σ₂, θ)|
    position: torch.Tensor   # [N, 2]

    @property
    def color_importance(self) -> torch.Tensor:
        return self.color.amax(1)

    @property
    def shape_importance(self) -> torch.Tensor:
        return self.shape.amax(1)

    @property
    def importance(self) -> torch.Tensor:
        """[N] one number per Gaussian: the max of its group importances, each normalized to mean 1."""
        def norm(v: torch.Tensor) -> torch.Tensor:
            return v / v.mean().clamp_min(1e-30)

        return torch.maximum(norm(self.color_importance), norm(self.shape_importance))


def calc_sensitivity(model: GaussianModel, height: int, width: int) -> Sensitivity:
    """Sensitivities of every parameter of ``model`` rendered at height × width."""
    params = [model.xy, model.log_scale, model.rotation, model.color]
    acc = [torch.zeros_like(p) for p in params]
    quant, model.quant = model.quant, None
    try:
        for c in range(model.channels):
            image = model.render(height, width)
            grads = torch.autograd.grad(image[c].sum(), params, allow_unused=True)
            for a, g in zip(acc, grads):
                if g is not None:
                    a += g.abs()
    finally:
        model.quant = quant
    pixels = float(height * width)
    xy, log_scale, rot, color = (a / pixels for a in acc)
    return Sensitivity(color=color * pixels, shape=torch.cat([log_scale, rot[:, None]], 1), position=xy)
