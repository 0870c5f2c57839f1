"""Projection: the coordinate convention, the radius rule, native against reference, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from lgi_gsplat2d import _reference as ref
from lgi_gsplat2d import functional as F


def test_convention_single_gaussian(cpu_ext):
    """x is the column, y the row; s1 lies along (cos theta, sin theta); pixel centres at (j + 0.5) / W."""
    h, w = 40, 80
    means = torch.tensor([[0.25, 0.75]], dtype=torch.float64)
    scales = torch.tensor([[0.1, 0.02]], dtype=torch.float64)  # 8 px along theta, 0.8 px across
    colors = torch.ones(1, 1, dtype=torch.float64)
    for backend in ("cpu", "torch"):
        img = F.render(means, scales, torch.zeros(1, dtype=torch.float64), colors, h, w, mode="sum",
                       backend=backend)[..., 0]
        row, col = divmod(int(img.argmax()), w)
        assert (row, col) in {(29, 19), (29, 20), (30, 19), (30, 20)}  # centre (20, 30) in pixels
        assert img[:, 20].gt(1e-3).sum() < img[30].gt(1e-3).sum()  # elongated along x at theta = 0
        rot = F.render(means, scales, torch.full((1,), math.pi / 2, dtype=torch.float64), colors, h, w,
                       mode="sum", backend=backend)[..., 0]
        assert rot[:, 20].gt(1e-3).sum() > rot[30].gt(1e-3).sum()  # along y at theta = pi/2


def test_pixel_covariance_and_radius(make_scene):
    """conic = inverse of A R diag(s^2) R^T A (A = diag(W, H)); radius = ceil(3 sqrt(lambda_max))."""
    h, w = 50, 70
    means, scales, rots, _ = make_scene(40, h, w, dtype=torch.float64, seed=1)
    xys, radii, conics, tiles = ref.project_gaussians_2d_scale_rot(means, scales, rots, h, w)
    c, s = torch.cos(rots), torch.sin(rots)
    R = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
    sigma = R @ torch.diag_embed(scales**2) @ R.transpose(-1, -2)
    A = torch.diag(torch.tensor([w, h], dtype=torch.float64))
    sigma_px = A @ sigma @ A
    inv = torch.linalg.inv(sigma_px)
    torch.testing.assert_close(conics, torch.stack([inv[:, 0, 0], inv[:, 0, 1], inv[:, 1, 1]], 1), rtol=1e-9,
                               atol=0)
    torch.testing.assert_close(xys, means * torch.tensor([w, h], dtype=torch.float64))
    lmax = torch.linalg.eigvalsh(sigma_px)[:, 1]
    expected = torch.ceil(3 * lmax.sqrt()).to(torch.int32)
    visible = radii > 0
    assert visible.sum() > 30
    assert torch.equal(radii[visible], expected[visible])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_native_projection_matches_reference(cpu_ext, make_scene, dtype):
    h, w = 61, 93
    means, scales, rots, _ = make_scene(500, h, w, dtype=dtype, seed=2)
    means = means * 1.4 - 0.2  # some off-screen
    xys, radii, conics, tiles = F.project_gaussians_2d_scale_rot(means, scales, rots, h, w, backend="cpu")
    xr, rr, cr, tr = ref.project_gaussians_2d_scale_rot(means, scales, rots, h, w)
    assert torch.equal(xys, xr)
    rtol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(conics, cr, rtol=rtol, atol=0)
    # cos/sin differ by an ulp between libm and torch; a radius may then land on the other side of an integer.
    assert (radii - rr).abs().max() <= (1 if dtype == torch.float32 else 0)
    assert ((radii == 0) == (rr == 0)).float().mean() > 0.99 and (radii == 0).any() and (radii > 0).any()
    same = radii == rr
    assert torch.equal(tiles[same], tr[same])


@pytest.mark.parametrize("tile", [8, 16, 32])
def test_num_tiles_hit(cpu_ext, make_scene, tile):
    h, w = 70, 90
    means, scales, rots, _ = make_scene(200, h, w, dtype=torch.float64, seed=3)
    xys, radii, conics, tiles = F.project_gaussians_2d_scale_rot(means, scales, rots, h, w, tile=tile,
                                                                 backend="cpu")
    j0, j1, i0, i1, empty = ref.pixel_boxes(xys, radii, h, w)
    expected = torch.where(empty, 0, (j1 // tile - j0 // tile + 1) * (i1 // tile - i0 // tile + 1))
    assert torch.equal(tiles.long(), expected)


def test_projection_gradients(cpu_ext, make_scene, close):
    h, w = 40, 60
    means, scales, rots, _ = make_scene(100, h, w, dtype=torch.float64, seed=4)
    gx = torch.randn(100, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    gc = torch.randn(100, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    grads = []
    for backend in ("cpu", "torch"):
        leaves = [t.clone().requires_grad_(True) for t in (means, scales, rots)]
        xys, _, conics, _ = F.project_gaussians_2d_scale_rot(*leaves, h, w, backend=backend)
        ((xys * gx).sum() + (conics * gc).sum()).backward()
        grads.append([t.grad for t in leaves])
    for g_cpu, g_ref in zip(*grads):
        close(g_cpu, g_ref, 1e-10, "projection gradient")


def test_rotations_column_vector(cpu_ext, make_scene):
    h, w = 20, 20
    means, scales, rots, colors = make_scene(10, h, w, dtype=torch.float64, seed=5)
    a = F.render(means, scales, rots, colors, h, w, backend="cpu")
    b = F.render(means, scales, rots[:, None], colors, h, w, backend="cpu")
    assert torch.equal(a, b)


def test_projection_gradcheck_reference():
    g = torch.Generator().manual_seed(7)
    means = torch.rand(4, 2, dtype=torch.float64, generator=g)
    scales = (0.05 + 0.1 * torch.rand(4, 2, dtype=torch.float64, generator=g))
    rots = torch.rand(4, dtype=torch.float64, generator=g) * 3

    def fn(m, s, r):
        xys, _, conics, _ = ref.project_gaussians_2d_scale_rot(m, s, r, 13, 17)
        return xys, conics

    assert torch.autograd.gradcheck(fn, (means.requires_grad_(), scales.requires_grad_(), rots.requires_grad_()))
