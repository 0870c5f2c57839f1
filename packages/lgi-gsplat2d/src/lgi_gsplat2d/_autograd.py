"""autograd Functions over the native kernels (one per op). The CPU and CUDA modules expose the same
functions, so each Function takes the module it should call (``ext``) as an argument."""

from __future__ import annotations

import torch

from lgi_gsplat2d.native import MODES  # the kernels' blend-mode ids (csrc/common.h: Mode), named once


def _empty(like: torch.Tensor) -> torch.Tensor:
    return like.new_empty(0)


def _rasterize_backward(ctx, kernel_backward):
    """The backward of both rasterizers, whose first four inputs are (xys, conics, colors, opacities).

    ``kernel_backward(need_geom, need_col, need_opac)`` calls the kernel and returns the gradients of those
    four; here they become None where not asked for, as do those of the other inputs."""
    need = ctx.needs_input_grad
    need_geom, need_col, need_opac = need[0] or need[1], need[2], need[3]
    if not (need_geom or need_col or need_opac):
        return (None,) * len(need)
    grads = kernel_backward(need_geom, need_col, need_opac)
    return (*(g if n else None for g, n in zip(grads, need[:4])), *(None,) * (len(need) - 4))


class ProjectGaussians(torch.autograd.Function):
    """(means [N,2], scales [N,2], rotations [N]) -> (xys [N,2], radii [N], conics [N,3], num_tiles_hit [N])."""

    @staticmethod
    def forward(ctx, means, scales, rotations, height, width, tile, ext, nthreads):
        xys, radii, conics, tiles = ext.project_forward(means, scales, rotations, height, width, tile, nthreads)
        ctx.save_for_backward(scales, rotations)
        ctx.meta = (height, width, ext, nthreads)
        ctx.mark_non_differentiable(radii, tiles)
        return xys, radii, conics, tiles

    @staticmethod
    def backward(ctx, grad_xys, grad_radii, grad_conics, grad_tiles):
        need = ctx.needs_input_grad
        if not any(need[:3]):
            return (None,) * 8
        scales, rotations = ctx.saved_tensors
        height, width, ext, nthreads = ctx.meta
        gx = grad_xys.contiguous() if grad_xys is not None else _empty(scales)
        gc = grad_conics.contiguous() if grad_conics is not None else _empty(scales)
        g_means, g_scales, g_rot = ext.project_backward(scales, rotations, height, width, gx, gc, nthreads)
        return (g_means if need[0] else None, g_scales if need[1] else None, g_rot if need[2] else None,
                None, None, None, None, None)


class RasterizeTiles(torch.autograd.Function):
    """Tiled rasterization: (xys, conics, colors, opacities) -> image [H, W, C]."""

    @staticmethod
    def forward(ctx, xys, conics, colors, opacities, radii, num_tiles_hit, height, width, mode, k, ext, nthreads):
        opac = opacities if opacities is not None else _empty(xys)
        out, *binning = ext.rasterize_forward(xys, radii, conics, num_tiles_hit, colors, opac, height, width,
                                              MODES[mode], k, nthreads)
        ctx.save_for_backward(xys, conics, colors, opac, radii, out, *binning)
        ctx.meta = (height, width, MODES[mode], k, ext, nthreads)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        def kernel_backward(need_geom, need_col, need_opac):
            # binning: gauss_offsets, tile_offsets, boxes, list_gid, list_slot; top-K: sel, wsel, wsum.
            (xys, conics, colors, opac, radii, out, goff, toff, boxes, gid, slot, sel, wsel,
             wsum) = ctx.saved_tensors
            height, width, mode, k, ext, nthreads = ctx.meta
            return ext.rasterize_backward(
                xys, radii, conics, colors, opac, height, width, mode, k, goff, toff, boxes, gid, slot,
                grad_out.contiguous(), out, sel, wsel, wsum, need_geom, need_col, need_opac, nthreads)

        return _rasterize_backward(ctx, kernel_backward)


class RasterizeNoTiles(torch.autograd.Function):
    """Untiled rasterization (every pixel visits every Gaussian): same inputs and output as RasterizeTiles."""

    @staticmethod
    def forward(ctx, xys, conics, colors, opacities, radii, height, width, mode, k, ext, nthreads):
        opac = opacities if opacities is not None else _empty(xys)
        out, sel, wsel, wsum = ext.no_tiles_forward(xys, radii, conics, colors, opac, height, width, MODES[mode],
                                                    k, nthreads)
        ctx.save_for_backward(xys, conics, colors, opac, radii, out, sel, wsel, wsum)
        ctx.meta = (height, width, MODES[mode], k, ext, nthreads)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        def kernel_backward(need_geom, need_col, need_opac):
            xys, conics, colors, opac, radii, out, sel, wsel, wsum = ctx.saved_tensors
            height, width, mode, k, ext, nthreads = ctx.meta
            return ext.no_tiles_backward(
                xys, radii, conics, colors, opac, height, width, mode, k, grad_out.contiguous(), out, sel, wsel,
                wsum, need_geom, need_col, need_opac, nthreads)

        return _rasterize_backward(ctx, kernel_backward)
