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

from lgi_train.bands import backprop_bands, row_bands
from lgi_train.model import GaussianModel


@dataclass
class Sensitivity:
    color: torch.Tensor      # [N, C] |∂ΣI/∂colour|, per pixel of the image
    shape: torch.Tensor      # [N, 3] |∂ΣI/∂(log σ₁, log σ₂, θ)|
    position: torch.Tensor   # [N, 2]
    # [N, 3] curvature of the squared error per group (position in pixels, shape features (m, u, v),
    # colour): what a unit of quantization error in the group costs (see :func:`calc_curvature`).
    curvature: torch.Tensor | None = None

    def subset(self, keep: torch.Tensor) -> Sensitivity:
        return Sensitivity(color=self.color[keep], shape=self.shape[keep], position=self.position[keep],
                           curvature=None if self.curvature is None else self.curvature[keep])

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
    bands = row_bands(height, width)
    quant, model.quant = model.quant, None
    try:
        if len(bands) == 1:  # one render, one backward per channel (the render is the same each time)
            image = model.render(height, width)
            for c in range(model.channels):
                grads = torch.autograd.grad(image[c].sum(), params, allow_unused=True,
                                            retain_graph=c < model.channels - 1)
                for a, g in zip(acc, grads):
                    if g is not None:
                        a += g.abs()
        else:  # a large image: each channel's derivative summed over the bands, then its magnitude
            sums = [[torch.zeros_like(p) for p in params] for _ in range(model.channels)]
            for rows in bands:
                band = model.render_rows(height, width, rows)
                for c in range(model.channels):
                    grads = torch.autograd.grad(band[..., c].sum(), params, allow_unused=True,
                                                retain_graph=c < model.channels - 1)
                    for total, g in zip(sums[c], grads):
                        if g is not None:
                            total += g
                del band
            for channel in sums:
                for a, total in zip(acc, channel):
                    a += total.abs()
    finally:
        model.quant = quant
    pixels = float(height * width)
    xy, log_scale, rot, color = (a / pixels for a in acc)
    return Sensitivity(color=color * pixels, shape=torch.cat([log_scale, rot[:, None]], 1), position=xy,
                       curvature=calc_curvature(model, height, width))


def calc_curvature(model: GaussianModel, height: int, width: int, probes: int = 16, seed: int = 0) -> torch.Tensor:
    """[N, 3] Gauss-Newton curvature of the summed squared error, per Gaussian and group.

    For a small error e in parameter θ the squared error grows by about e²·Σ_p (∂I_p/∂θ)², the
    diagonal of JᵀJ. Groups: position (in pixels, x + y), shape (the coded features m, u, v),
    colour (summed over channels).

    With sum blending every pixel is Σ_i c_i·w_i(p), so Gaussian i's derivatives involve only itself
    and the sums have closed forms (integrals of a Gaussian's square, Σ_px its pixel covariance):
    colour C·π·√det Σ_px; position |c|²·(π/2)·√det Σ_px·tr Σ_px⁻¹; the log-area m |c|²·(π/2)·√det Σ_px
    and u, v half of that each (exact at isotropy), times the share of the Gaussian inside the image. They are free
    of sampling noise and cost nothing. Top-k blending couples Gaussians through the normalization:
    there the diagonal is estimated by random-sign probes (E[(Jᵀv)²] = diag JᵀJ for v of independent
    ±1 entries; deterministic for a given ``seed``).
    """
    n = model.num_gaussians
    if n == 0:
        return torch.zeros(0, 3)
    if model.render_mode == "sum":
        with torch.no_grad():
            s = torch.exp(model.log_scale.detach().double())
            th = model.rotation.detach().double()
            c, si = torch.cos(th), torch.sin(th)
            # Σ_unit = R diag(s²) Rᵀ, then to pixels: Σ_px = D Σ_unit D with D = diag(W, H).
            a = (c * c * s[:, 0] ** 2 + si * si * s[:, 1] ** 2) * width ** 2
            d = (si * si * s[:, 0] ** 2 + c * c * s[:, 1] ** 2) * height ** 2
            sqrt_det = s[:, 0] * s[:, 1] * width * height
            trace_inv = (a + d) / sqrt_det ** 2
            c2 = (model.color.detach().double() ** 2).sum(1)
            # Only the part inside the image counts: w² has the marginal std σ/√2 along each axis.
            xy = model.xy.detach().double()
            inside = torch.ones_like(c2)
            for axis, (var, size) in enumerate(((a, width), (d, height))):
                z = size * 2 ** 0.5 / var.sqrt()
                inside = inside * (torch.special.ndtr((1 - xy[:, axis]) * z) - torch.special.ndtr(-xy[:, axis] * z))
            half_pi = torch.pi / 2
            out = torch.stack([c2 * half_pi * sqrt_det * trace_inv, 2 * c2 * half_pi * sqrt_det,
                               model.channels * torch.pi * sqrt_det], 1) * inside[:, None]
        return out.float().cpu()
    return _probe_curvature(model, height, width, probes, seed)


def _probe_curvature(model: GaussianModel, height: int, width: int, probes: int, seed: int) -> torch.Tensor:
    from lgi_dictco.gauss.torch_quant import features_to_shape, shape_features
    from lgi_gsplat2d import render

    gen = torch.Generator().manual_seed(seed)
    xy = model.xy.detach().clone().requires_grad_(True)
    feat = shape_features(model.log_scale.detach(), model.rotation.detach()).requires_grad_(True)
    color = model.color.detach().clone().requires_grad_(True)
    acc = [torch.zeros_like(t) for t in (xy, feat, color)]
    bands = row_bands(height, width)
    image = None
    for probe in range(probes):
        if len(bands) == 1:  # one render; each probe is a backward pass of it with its own signs
            if image is None:
                scales, rot = features_to_shape(feat)
                image = render(xy, scales, rot, color, height, width, mode=model.render_mode, k=model.topk,
                               backend=model.backend)
            v = (torch.randint(0, 2, image.shape, generator=gen) * 2 - 1).to(image)
            grads = torch.autograd.grad((image * v).sum(), (xy, feat, color), retain_graph=probe < probes - 1)
        else:  # a large image: Jᵀv summed over the bands (each band's signs drawn in turn), then squared
            scales, rot = features_to_shape(feat)
            params = {"means": xy, "scales": scales, "rotations": rot, "colors": color}

            def signed(rows, band):
                return (band * (torch.randint(0, 2, band.shape, generator=gen) * 2 - 1).to(band)).sum()

            projected, band_grads = backprop_bands(params, height, width, model.render_mode, model.topk,
                                                   model.backend, bands, signed)
            grads = torch.autograd.grad(projected, (xy, feat, color), band_grads)
        for a, g in zip(acc, grads):
            a += g.detach() ** 2 / probes
    pos = acc[0][:, 0] / width ** 2 + acc[0][:, 1] / height ** 2  # per pixel of position error
    return torch.stack([pos, acc[1].sum(1), acc[2].sum(1)], 1).cpu()
