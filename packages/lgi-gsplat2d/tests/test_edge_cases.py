"""Edge cases of every backend: empty sets, off-screen, degenerate scales, tiny images, bad inputs."""

from __future__ import annotations

import pytest
import torch

from lgi_gsplat2d import _reference as ref
from lgi_gsplat2d import functional as F

BACKENDS = ["cpu", "torch"]


def _leaves(*tensors):
    return [t.clone().requires_grad_(True) for t in tensors]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["sum", "topk"])
def test_no_gaussians(cpu_ext, backend, mode):
    leaves = _leaves(torch.zeros(0, 2), torch.zeros(0, 2), torch.zeros(0), torch.zeros(0, 3))
    out = F.render(*leaves, 10, 12, mode=mode, backend=backend)
    assert out.shape == (10, 12, 3) and not out.any()
    out.sum().backward()
    assert [t.grad.shape for t in leaves] == [(0, 2), (0, 2), (0,), (0, 3)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["sum", "topk"])
def test_all_off_screen(cpu_ext, make_scene, backend, mode):
    means, scales, rots, colors = make_scene(20, 16, 16, dtype=torch.float32, seed=1)
    means = means + 3.0  # far right and below
    leaves = _leaves(means, scales, rots, colors)
    xys, radii, conics, tiles = F.project_gaussians_2d_scale_rot(*leaves[:3], 16, 16, backend=backend)
    assert not radii.any() and not tiles.any()
    out = F.render(*leaves, 16, 16, mode=mode, backend=backend)
    assert not out.any()
    out.sum().backward()
    assert all(torch.isfinite(t.grad).all() and not t.grad.any() for t in leaves)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["sum", "topk"])
def test_degenerate_scales(cpu_ext, make_scene, close, backend, mode):
    """Near-zero, zero and huge scales: finite outputs and gradients, the same in every backend."""
    h, w = 24, 20
    means, scales, rots, colors = make_scene(12, h, w, dtype=torch.float64, seed=2)
    scales[0] = 1e-9          # far below a pixel
    scales[1] = torch.tensor([1e-7, 0.1])  # a needle
    scales[2] = 0.0           # culled
    scales[3] = 1e3           # covers everything with w ~ 1
    scales[4] = torch.tensor([1e3, 1e-3])
    means[0] = torch.tensor([(3 + 0.5) / w, (5 + 0.5) / h])  # exactly on a pixel centre: w = 1 there
    leaves = _leaves(means, scales, rots, colors)
    out = F.render(*leaves, h, w, mode=mode, k=4, backend=backend)
    out.square().sum().backward()
    ref_leaves = _leaves(means, scales, rots, colors)
    out_ref = ref.render(*ref_leaves, h, w, mode=mode, k=4)
    out_ref.square().sum().backward()
    close(out, out_ref, 1e-10, "image")
    for a, b in zip(leaves, ref_leaves):
        assert torch.isfinite(a.grad).all()
        close(a.grad, b.grad, 1e-8, "grad")
    _, radii, _, _ = F.project_gaussians_2d_scale_rot(means, scales, rots, h, w, backend=backend)
    assert radii[2] == 0 and radii[0] >= 1 and radii[3] > 0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["sum", "topk"])
def test_one_pixel_image(cpu_ext, make_scene, close, backend, mode):
    inputs = make_scene(5, 1, 1, dtype=torch.float64, seed=3, sigma_px=0.6)
    out = F.render(*inputs, 1, 1, mode=mode, k=2, backend=backend)
    close(out, ref.render(*inputs, 1, 1, mode=mode, k=2), 1e-12, "1x1")
    assert out.shape == (1, 1, 3)


@pytest.mark.parametrize("name", ["means", "scales", "rotations", "colors"])
def test_nan_input_is_a_clear_error(cpu_ext, make_scene, name):
    inputs = dict(zip(["means", "scales", "rotations", "colors"], make_scene(4, 8, 8, dtype=torch.float32)))
    inputs[name] = inputs[name].clone()
    inputs[name].view(-1)[1] = float("nan")
    with pytest.raises(ValueError, match=f"{name}.*NaN"):
        F.render(inputs["means"], inputs["scales"], inputs["rotations"], inputs["colors"], 8, 8, backend="cpu")


def test_mismatched_dtypes_and_devices(make_scene):
    means, scales, rots, colors = make_scene(4, 8, 8, dtype=torch.float32)
    with pytest.raises(ValueError, match="scales has dtype torch.float64"):
        F.render(means, scales.double(), rots, colors, 8, 8)
    with pytest.raises(ValueError, match="colors is on meta"):
        F.render(means, scales, rots, torch.empty(4, 3, device="meta"), 8, 8)
    with pytest.raises(ValueError, match="backend='cuda' needs CUDA tensors"):
        F.render(means, scales, rots, colors, 8, 8, backend="cuda")
    with pytest.raises(ValueError, match="float32 or float64"):
        F.render(means.half(), scales.half(), rots.half(), colors.half(), 8, 8)


def test_bad_arguments(make_scene):
    means, scales, rots, colors = make_scene(4, 8, 8, dtype=torch.float32)
    with pytest.raises(ValueError, match=r"scales must have shape \[4, 2\]"):
        F.render(means, scales[:3], rots, colors, 8, 8)
    with pytest.raises(ValueError, match="k must be"):
        F.render(means, scales, rots, colors, 8, 8, k=33)
    with pytest.raises(ValueError, match="mode must be"):
        F.render(means, scales, rots, colors, 8, 8, mode="max")
    with pytest.raises(ValueError, match="height must be"):
        F.render(means, scales, rots, colors, 0, 8)
    with pytest.raises(ValueError, match="opacities are used in mode='sum' only"):
        F.render(means, scales, rots, colors, 8, 8, mode="topk", opacities=torch.ones(4))
    with pytest.raises(ValueError, match="backend must be"):
        F.render(means, scales, rots, colors, 8, 8, backend="gpu")


def test_tile_count_mismatch_is_reported(cpu_ext, make_scene):
    means, scales, rots, colors = make_scene(30, 40, 40, dtype=torch.float32)
    xys, radii, conics, tiles = F.project_gaussians_2d_scale_rot(means, scales, rots, 40, 40, tile=8,
                                                                 backend="cpu")
    with pytest.raises(ValueError, match="num_tiles_hit.*tile=16"):
        F.rasterize_gaussians_sum(xys, radii, conics, tiles, colors, 40, 40, backend="cpu")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["sum", "topk"])
def test_a_needle_beyond_float_precision_draws_finite_pixels(cpu_ext, backend, mode):
    """Axes 9e5 apart in float32: the conic is beyond float precision and rounding makes q negative (to
    -5e4 at the pixel below). A weight is exp(-max(q, 0)/2), at most 1, so the pixel stays finite (before:
    exp(+24576) = inf, and inf / inf a NaN pixel). Found by the long fuzz run in a decoded file."""
    h, w = 125, 42
    means = torch.tensor([[0.49804688, 0.49023438], [0.3, 0.3]])
    scales = torch.tensor([[5.6780756e-01, 6.3769869e-07], [0.05, 0.04]])
    rots = torch.tensor([-0.92771435, 0.3])
    colors = torch.tensor([[0.26, 0.5, 0.7], [0.9, 0.1, 0.2]])
    a, b, c = F.project_gaussians_2d_scale_rot(means, scales, rots, h, w, backend=backend)[2][0]
    dx, dy = 5.5 - means[0, 0] * w, 122.5 - means[0, 1] * h
    assert float((a * dx * dx + 2 * b * dy * dx) + (c * dy) * dy) < -1000  # the case: a very negative q
    leaves = _leaves(means, scales, rots, colors)
    out = F.render(*leaves, h, w, mode=mode, k=4, backend=backend)
    assert torch.isfinite(out).all() and out.abs().max() <= 1 + 1e-6  # colours in [0, 1], weights <= 1
    out.square().sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in leaves)
    expected = ref.render(means, scales, rots, colors, h, w, mode=mode, k=4)
    assert torch.isfinite(expected).all()
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
