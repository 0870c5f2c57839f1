"""The rasterizer's documented limits: typed errors raised before any image buffer is allocated."""

from __future__ import annotations

import pytest
import torch

import lgi_gsplat2d
from lgi_gsplat2d import MAX_INTERSECTIONS, MAX_PIXEL_SLOTS, RenderLimitError


def _covering(n):
    """n Gaussians centred in the unit square, each covering the whole canvas."""
    means = torch.full((n, 2), 0.5)
    scales = torch.full((n, 2), 2.0)
    return means, scales, torch.zeros(n), torch.rand(n, 3, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_pixels_times_k_beyond_2_31_is_a_render_limit_error(backend):
    means, scales, rot, col = _covering(2)
    # 2^31 / 8 pixels x k = 8 is one slot too many; refused before the projection or any buffer.
    with pytest.raises(RenderLimitError, match="2\\^31 - 1; render it in bands"):
        lgi_gsplat2d.render(means, scales, rot, col, 1 << 14, 1 << 14, mode="topk", k=8, backend=backend)
    with pytest.raises(RenderLimitError):  # k counts in sum mode too: the native kernels check it there
        lgi_gsplat2d.render(means, scales, rot, col, 1 << 14, 1 << 14, mode="sum", k=8, backend=backend)
    assert (1 << 14) * (1 << 14) * 8 == MAX_PIXEL_SLOTS + 1
    assert issubclass(RenderLimitError, ValueError)


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_more_than_2_31_tile_intersections_is_a_render_limit_error(backend):
    # 8192 x 8192 pixels = 262,144 tiles; 8,193 canvas-covering Gaussians make 2^31 + 262,144 pairs.
    n, side = 8193, 8192
    means, scales, rot, col = _covering(n)
    xys, radii, conics, tiles = lgi_gsplat2d.project_gaussians_2d_scale_rot(means, scales, rot, side, side,
                                                                            backend=backend)
    assert int(tiles.sum(dtype=torch.int64)) == n * (side // 16) ** 2 > MAX_INTERSECTIONS
    with pytest.raises(RenderLimitError, match="intersections exceed the rasterizer's limit"):
        lgi_gsplat2d.rasterize_gaussians_sum(xys, radii, conics, tiles, col, side, side, mode="sum", k=1,
                                             backend=backend)
    with pytest.raises(RenderLimitError, match="intersections"):
        lgi_gsplat2d.render(means, scales, rot, col, side, side, mode="sum", k=1, backend=backend)


def test_within_the_limits_nothing_changes(cpu_ext):
    means, scales, rot, col = _covering(3)
    out = lgi_gsplat2d.render(means, scales, rot, col, 20, 24, mode="topk", k=2, backend="cpu")
    ref = lgi_gsplat2d.render(means.double(), scales.double(), rot.double(), col.double(), 20, 24, mode="topk",
                              k=2, backend="torch")
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-6)
