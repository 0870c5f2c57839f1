"""Stage 1: the Gaussians the fit starts from.

Positions are drawn ∝ the squared Sobel gradient of the image (with a uniform share), each Gaussian
starts isotropic with σ a multiple of the distance to its neighbours, and its colour is the image at
its centre. Then, optionally, the colours are solved in closed form for that geometry: with the
positions, scales and rotations fixed, the top-K render is linear in the colours (each pixel is a
normalised weighted mean of its K nearest Gaussians' colours), so the best colours are a linear
least-squares problem, ``min_c ||A c − y||²``. :func:`solve_colors` runs conjugate gradients on its
normal equations (CGLS), with the renderer as ``A`` and its backward pass as ``Aᵀ``: one forward and
one backward an iteration, the price of one fit step.
"""

from __future__ import annotations

import torch

from lgi_train.encode.tuning import Tuning
from lgi_train.init import colors_at, sample_from_density, scales_from_density, sobel_magnitude_sq
from lgi_train.model import GaussianModel


def initial_model(target: torch.Tensor, n: int, tuning: Tuning, topk: int, generator: torch.Generator,
                  backend: str = "auto") -> GaussianModel:
    """``n`` Gaussians for ``target`` [C, H, W] (on its device), placed and coloured as the module says."""
    image = target.detach().cpu().float()
    _, h, w = image.shape
    xy = sample_from_density(sobel_magnitude_sq(image), n, tuning.init_uniform, generator)
    model = GaussianModel(xy, scales_from_density(xy, h, w, tuning.init_scale),
                          torch.rand(n, generator=generator) * torch.pi, colors_at(image, xy),
                          render_mode="topk", topk=topk, backend=backend).to(target.device)
    if tuning.color_solve > 0:
        solve_colors(model, target, tuning.color_solve)
    return model


def solve_colors(model: GaussianModel, target: torch.Tensor, iterations: int) -> float:
    """Replace ``model``'s colours by the least-squares colours for its geometry, by ``iterations`` of
    CGLS started from the current colours. Returns the squared error's ratio, final ÷ initial."""
    h, w = target.shape[1:]
    y = target.permute(1, 2, 0).contiguous()

    def forward(colors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(A·colors [H, W, C], the leaf it was rendered from)."""
        from lgi_gsplat2d import render

        leaf = colors.detach().requires_grad_(True)
        p = model.params()
        out = render(p["means"].detach(), p["scales"].detach(), p["rotations"].detach(), leaf, h, w,
                     mode=model.render_mode, k=model.topk, backend=model.backend)
        return out, leaf

    def adjoint(out: torch.Tensor, leaf: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """Aᵀ·r: the render is linear in the colours, so any render's backward pass is A's adjoint."""
        (g,) = torch.autograd.grad(out, leaf, grad_outputs=r)
        return g

    with torch.no_grad():
        c = model.color.detach().clone()
    ac, leaf = forward(c)
    r = y - ac.detach()
    start = float((r * r).sum())
    s = adjoint(ac, leaf, r)
    p = s.clone()
    gamma = float((s * s).sum())
    for _ in range(iterations):
        if gamma <= 0:
            break
        q, leaf = forward(p)
        qd = q.detach()
        qq = float((qd * qd).sum())
        if qq <= 0:
            break
        alpha = gamma / qq
        c = c + alpha * p
        r = r - alpha * qd
        s = adjoint(q, leaf, r)
        gamma_new = float((s * s).sum())
        p = s + (gamma_new / gamma) * p
        gamma = gamma_new
    with torch.no_grad():
        model.color.copy_(c)
    end = float((r * r).sum())
    return end / start if start > 0 else 1.0
