"""Pure-PyTorch reference: the test oracle and the fallback where no native kernel builds.

Same signatures as :mod:`lgi_gsplat2d.functional` (without ``backend``), differentiable by autograd, any
floating dtype and device. Memory stays bounded: the image is processed in 32x32-pixel blocks, each block
sees only the Gaussians whose pixel box overlaps it, a block's pixels are split further when
pixels x Gaussians exceeds ``_BUDGET`` elements, and with autograd on every block is checkpointed
(recomputed in the backward pass) so the graph never holds more than one block. It never builds an
N x H x W tensor.

The arithmetic mirrors the kernels where it decides anything: q is written in the order of
``csrc/common.h: q_form`` and the pixel box is computed in float64 like ``pixel_box``, so given the same
projected inputs the cutoff and the top-K ranking agree exactly with the native backends.
"""

from __future__ import annotations

import math

import torch
from torch.utils.checkpoint import checkpoint

from .native import TILE

__all__ = ["project_gaussians_2d_scale_rot", "rasterize_gaussians_sum", "rasterize_gaussians_no_tiles", "render"]

CUTOFF = 9.0        # q <= 9: 3 sigma
SIGMAS = 3.0        # radius = ceil(3 sqrt(lambda_max))
TOPK_EPS = 0.01          # csrc/common.h: kTopkEps, the normalization epsilon of mode "topk"
TOPK_HARD_EPS = 1e-4     # kTopkHardEps, that of mode "topk-hard"
TOPK_FLOOR = math.exp(-4.5)  # csrc/common.h: kTopkFloor; mode "topk" weighs exp(-q/2) - TOPK_FLOOR
MAX_RADIUS = 2.0**30
_BLOCK = 32         # pixels per block side
_BUDGET = 1 << 21   # elements per [pixels, Gaussians] tensor


def pixel_boxes(xys: torch.Tensor, radii: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, ...]:
    """Inclusive pixel boxes (j0, j1, i0, i1) [N] int64 and an ``empty`` mask [N]; as ``pixel_box`` in C++."""
    with torch.no_grad():
        x, y = xys[:, 0].double(), xys[:, 1].double()
        r = radii.double()
        j0 = torch.ceil(x - r - 0.5).clamp(min=0.0)
        j1 = torch.floor(x + r - 0.5).clamp(max=width - 1.0)
        i0 = torch.ceil(y - r - 0.5).clamp(min=0.0)
        i1 = torch.floor(y + r - 0.5).clamp(max=height - 1.0)
        empty = (radii <= 0) | ~(j0 <= j1) | ~(i0 <= i1)
        j0, j1, i0, i1 = (torch.where(empty, 0.0, v).long() for v in (j0, j1, i0, i1))
        return j0, j1, i0, i1, empty


def project_gaussians_2d_scale_rot(means, scales, rotations, height, width, tile=16):
    """Reference projection; see :func:`lgi_gsplat2d.functional.project_gaussians_2d_scale_rot`."""
    rot = rotations.reshape(-1)
    xys = torch.stack([means[:, 0] * width, means[:, 1] * height], dim=1)
    cs, sn = torch.cos(rot), torch.sin(rot)
    s1, s2 = scales[:, 0], scales[:, 1]
    zero = (s1 == 0) | (s2 == 0)
    # A zero scale culls the Gaussian; the where() keeps its gradient 0 instead of 0 * inf.
    s1s, s2s = torch.where(zero, 1.0, s1), torch.where(zero, 1.0, s2)
    i1, i2 = 1.0 / (s1s * s1s), 1.0 / (s2s * s2s)
    m00 = cs * cs * i1 + sn * sn * i2
    m01 = cs * sn * (i1 - i2)
    m11 = sn * sn * i1 + cs * cs * i2
    conics = torch.stack([m00 / (width * width), m01 / (width * height), m11 / (height * height)], dim=1)
    conics = torch.where(zero[:, None], math.inf, conics)
    with torch.no_grad():
        dc, ds = cs.double(), sn.double()
        v1, v2 = s1.double() ** 2, s2.double() ** 2
        sxx = float(width) ** 2 * (dc * dc * v1 + ds * ds * v2)
        syy = float(height) ** 2 * (ds * ds * v1 + dc * dc * v2)
        sxy = float(width) * height * dc * ds * (v1 - v2)
        half = 0.5 * (sxx - syy)
        lmax = 0.5 * (sxx + syy) + torch.sqrt(half * half + sxy * sxy)
        r = torch.ceil(SIGMAS * torch.sqrt(lmax.clamp(min=0.0)))
        r = torch.where(r <= MAX_RADIUS, r, MAX_RADIUS).clamp(min=1.0)
        culled = zero | ~torch.isfinite(conics).all(1) | ~torch.isfinite(xys).all(1)
        radii = torch.where(culled, 0.0, r).to(torch.int32)
        radii, tiles = tiles_hit(xys, radii, height, width, tile)
    return xys, radii, conics, tiles


def tiles_hit(xys: torch.Tensor, radii: torch.Tensor, height: int, width: int, tile: int = TILE):
    """(radii, tiles) [N] int32: the radii with 0 for Gaussians whose pixel box misses the canvas, and the
    number of ``tile``-pixel tiles each box touches (what the projection returns as ``num_tiles_hit``)."""
    j0, j1, i0, i1, empty = pixel_boxes(xys, radii, height, width)
    tiles = (torch.div(j1, tile, rounding_mode="floor") - torch.div(j0, tile, rounding_mode="floor") + 1) * (
        torch.div(i1, tile, rounding_mode="floor") - torch.div(i0, tile, rounding_mode="floor") + 1)
    return torch.where(empty, 0, radii).to(torch.int32), torch.where(empty, 0, tiles).to(torch.int32)


def _block(xys, conics, colors, opacities, idx, box, rows, cols, mode, k):
    """Output [len(rows), len(cols), C] of one block from the Gaussians ``idx`` (ascending)."""
    j0, j1, i0, i1 = (v[idx] for v in box)
    x, y = xys[idx, 0], xys[idx, 1]
    a, b, c = conics[idx, 0], conics[idx, 1], conics[idx, 2]
    col = colors[idx]
    dtype = xys.dtype
    px = cols.to(dtype) + 0.5
    py = rows.to(dtype) + 0.5
    dx = px[None, :, None] - x                      # [1, w, n]
    dy = py[:, None, None] - y                      # [h, 1, n]
    q = a * dx * dx + 2 * b * dy * dx + c * dy * dy  # the order of q_form (common.h)
    in_cols = (cols[None, :, None] >= j0) & (cols[None, :, None] <= j1)
    in_rows = (rows[:, None, None] >= i0) & (rows[:, None, None] <= i1)
    keep = (q <= CUTOFF) & in_cols & in_rows        # [h, w, n]
    if mode != "sum":
        # The K smallest q, ties to the lower index (idx is ascending): everything below the K-th value,
        # then as many of the entries equal to it as still fit, in index order.
        qm = torch.where(keep, q.detach(), math.inf)
        kk = min(k, qm.shape[-1])
        kth = torch.kthvalue(qm, kk, dim=-1, keepdim=True).values
        below = qm < kth
        tie = (qm == kth) & keep
        if bool(tie.any()):
            need = kk - below.sum(-1, keepdim=True)
            below = below | (tie & (tie.cumsum(-1) <= need))
        keep = below
    # exp(-max(q, 0)/2): rounding makes q negative for Gaussians whose axes differ by more than ~10^3.5
    # (common.h, q_form), and exp would overflow
    w = torch.where(keep, torch.exp((-0.5 * q).clamp(max=0.0)), 0.0)
    if mode == "topk":  # 0 where not kept stays 0
        w = (w - TOPK_FLOOR).clamp(min=0.0)
    if mode == "sum":
        if opacities is not None:
            w = w * opacities[idx]
        return w @ col
    return (w @ col) / (w.sum(-1, keepdim=True) + (TOPK_EPS if mode == "topk" else TOPK_HARD_EPS))


def _rasterize(xys, radii, conics, colors, height, width, mode, k, opacities):
    if mode not in ("sum", "topk", "topk-hard"):
        raise ValueError(f"mode must be 'sum', 'topk' or 'topk-hard', got {mode!r}")
    n, channels = colors.shape
    box = pixel_boxes(xys, radii, height, width)
    j0, j1, i0, i1, empty = box
    live = ~empty
    grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (xys, conics, colors, opacities))
    device = xys.device
    bands = []
    for r0 in range(0, height, _BLOCK):
        r1 = min(r0 + _BLOCK, height)
        row_blocks = []
        for c0 in range(0, width, _BLOCK):
            c1 = min(c0 + _BLOCK, width)
            sel = live & (i1 >= r0) & (i0 < r1) & (j1 >= c0) & (j0 < c1)
            idx = torch.nonzero(sel).squeeze(1)
            if idx.numel() == 0:
                row_blocks.append(xys.new_zeros(r1 - r0, c1 - c0, channels))
                continue
            cols = torch.arange(c0, c1, device=device)
            step = max(1, _BUDGET // ((c1 - c0) * idx.numel()))
            parts = []
            for s0 in range(r0, r1, step):
                rows = torch.arange(s0, min(s0 + step, r1), device=device)
                args = (xys, conics, colors, opacities, idx, box[:4], rows, cols, mode, k)
                if grad:
                    parts.append(checkpoint(_block, *args, use_reentrant=False))
                else:
                    parts.append(_block(*args))
            row_blocks.append(torch.cat(parts, 0))
        bands.append(torch.cat(row_blocks, 1))
    out = torch.cat(bands, 0)
    if grad and not out.requires_grad:  # nothing visible: keep the output connected to the inputs
        zero = sum(torch.where(torch.isfinite(t), t, 0.0).sum() * 0.0
                   for t in (xys, conics, colors, opacities) if t is not None)
        out = out + zero
    return out


def rasterize_gaussians_sum(xys, radii, conics, num_tiles_hit, colors, height, width, mode="topk", k=10,
                            opacities=None):
    """Reference rasterizer; see :func:`lgi_gsplat2d.functional.rasterize_gaussians_sum`."""
    del num_tiles_hit  # the reference does not bin into tiles
    return _rasterize(xys, radii, conics, colors, height, width, mode, k, opacities)


def rasterize_gaussians_no_tiles(xys, radii, conics, colors, height, width, mode="topk", k=10, opacities=None):
    """Reference of the untiled rasterizer (identical to the tiled one: the reference never tiles)."""
    return _rasterize(xys, radii, conics, colors, height, width, mode, k, opacities)


def render(means, scales, rotations, colors, height, width, mode="topk", k=10, opacities=None):
    """Reference of :func:`lgi_gsplat2d.functional.render`."""
    xys, radii, conics, tiles = project_gaussians_2d_scale_rot(means, scales, rotations, height, width)
    return _rasterize(xys, radii, conics, colors, height, width, mode, k, opacities)
