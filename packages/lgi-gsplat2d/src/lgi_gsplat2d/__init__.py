"""Differentiable 2D Gaussian projection and tile rasterizer (CPU, CUDA, PyTorch reference).

    from lgi_gsplat2d import render
    image = render(means, scales, rotations, colors, height, width, mode="topk", k=10)  # [H, W, C]

Coordinates, the 3-sigma cutoff and the blend modes are documented in :mod:`lgi_gsplat2d.functional`
and the package README. Importing this package never compiles: native kernels build on first use.
"""

import importlib

# Importing the package imports no torch: the torch-dependent names load on first use (PEP 562), so the
# torch-free lgi_gsplat2d.native (the decoder's renderer) starts in milliseconds.
_LAZY = {
    "BackendUnavailable": "native",
    "gaussians_in_rows": "functional",
    "kernel_status": "_backend",
    "load_kernels": "_backend",
    "MAX_INTERSECTIONS": "functional",
    "MAX_PIXEL_SLOTS": "functional",
    "RenderLimitError": "native",
    "TILE": "native",
    "project_gaussians_2d_scale_rot": "functional",
    "rasterize_gaussians_no_tiles": "functional",
    "rasterize_gaussians_sum": "functional",
    "rasterize_rows": "functional",
    "render": "functional",
    "render_rows": "functional",
    "row_spans": "functional",
}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__version__ = "0.2.0"

__all__ = [
    "MAX_INTERSECTIONS",
    "MAX_PIXEL_SLOTS",
    "BackendUnavailable",
    "RenderLimitError",
    "TILE",
    "gaussians_in_rows",
    "kernel_status",
    "load_kernels",
    "project_gaussians_2d_scale_rot",
    "rasterize_gaussians_no_tiles",
    "rasterize_gaussians_sum",
    "rasterize_rows",
    "render",
    "render_rows",
    "row_spans",
]
