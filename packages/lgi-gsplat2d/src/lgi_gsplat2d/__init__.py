"""Differentiable 2D Gaussian projection and tile rasterizer (CPU, CUDA, PyTorch reference).

    from lgi_gsplat2d import render
    image = render(means, scales, rotations, colors, height, width, mode="topk", k=10)  # [H, W, C]

Coordinates, the 3-sigma cutoff and the blend modes are documented in :mod:`lgi_gsplat2d.functional`
and the package README. Importing this package never compiles: native kernels build on first use.
"""

from ._backend import BackendUnavailable, kernel_status
from .functional import (
    MAX_INTERSECTIONS,
    MAX_PIXEL_SLOTS,
    RenderLimitError,
    project_gaussians_2d_scale_rot,
    rasterize_gaussians_no_tiles,
    rasterize_gaussians_sum,
    render,
)

__version__ = "0.2.0"

__all__ = [
    "MAX_INTERSECTIONS",
    "MAX_PIXEL_SLOTS",
    "BackendUnavailable",
    "RenderLimitError",
    "kernel_status",
    "project_gaussians_2d_scale_rot",
    "rasterize_gaussians_no_tiles",
    "rasterize_gaussians_sum",
    "render",
]
