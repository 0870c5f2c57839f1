"""The C++ (OpenMP) backend against the PyTorch reference: forward and gradients, both modes.

Tolerances. Given the same projected inputs, every backend computes q with the same operations in the
same order (csrc/common.h: q_form), so the 3-sigma cutoff and the top-K selection agree exactly and only
exp() and the order of summation differ. float32: forward within 1e-5 and gradients within 1e-4 of the
tensor's scale (sums of up to thousands of float32 terms). float64: 1e-10.
"""

from __future__ import annotations

import math

import pytest
import torch

from lgi_gsplat2d import _reference as ref
from lgi_gsplat2d import functional as F

SIZES = [(37, 50), (16, 16), (45, 17), (64, 64)]


def _grads(fn, inputs, upstream):
    leaves = [t.detach().clone().requires_grad_(True) if t is not None else None for t in inputs]
    out = fn(*leaves)
    (out * upstream).sum().backward()
    return out.detach(), [t.grad if t is not None else None for t in leaves]


def _projected(make_scene, n, h, w, channels, dtype, seed):
    means, scales, rots, colors = make_scene(n, h, w, channels=channels, dtype=dtype, seed=seed)
    xys, radii, conics, tiles = ref.project_gaussians_2d_scale_rot(means, scales, rots, h, w)
    return xys.detach(), radii, conics.detach(), tiles, colors


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("mode,k", [("sum", 10), ("topk", 1), ("topk", 4), ("topk", 10), ("topk", 32),
                                    ("topk-hard", 4)])
@pytest.mark.parametrize("channels", [1, 3])
def test_cpu_matches_reference_float32(cpu_ext, make_scene, close, size, mode, k, channels):
    h, w = size
    xys, radii, conics, tiles, colors = _projected(make_scene, 60, h, w, channels, torch.float32, seed=h * w + k)
    upstream = torch.randn(h, w, channels, generator=torch.Generator().manual_seed(1))

    def run(backend):
        return _grads(lambda x, c, col: F.rasterize_gaussians_sum(x, radii, c, tiles, col, h, w, mode=mode, k=k,
                                                                 backend=backend),
                      [xys, conics, colors], upstream)

    out, grads = run("cpu")
    out_ref, grads_ref = run("torch")
    close(out, out_ref, 1e-5, "image")
    for name, g, g_ref in zip(("xys", "conics", "colors"), grads, grads_ref):
        close(g, g_ref, 1e-4, name)


@pytest.mark.parametrize("mode,k", [("sum", 10), ("topk", 3), ("topk", 17), ("topk-hard", 3)])
@pytest.mark.parametrize("size", [(29, 41), (48, 32)])
def test_cpu_render_matches_reference_float64(cpu_ext, make_scene, close, mode, k, size):
    """End to end (projection + rasterization + all gradients) in float64, where the two agree to rounding."""
    h, w = size
    inputs = make_scene(80, h, w, channels=3, dtype=torch.float64, seed=k)
    upstream = torch.randn(h, w, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    out, grads = _grads(lambda *t: F.render(*t, h, w, mode=mode, k=k, backend="cpu"), inputs, upstream)
    out_ref, grads_ref = _grads(lambda *t: ref.render(*t, h, w, mode=mode, k=k), inputs, upstream)
    close(out, out_ref, 1e-10, "image")
    for name, g, g_ref in zip(("means", "scales", "rotations", "colors"), grads, grads_ref):
        close(g, g_ref, 1e-9, name)


@pytest.mark.parametrize("dtype,rel", [(torch.float32, 1e-4), (torch.float64, 1e-10)])
def test_sum_mode_opacities(cpu_ext, make_scene, close, dtype, rel):
    h, w = 33, 40
    means, scales, rots, colors = make_scene(50, h, w, dtype=dtype, seed=3)
    opac = torch.rand(50, generator=torch.Generator().manual_seed(4)).to(dtype)
    upstream = torch.randn(h, w, 3, generator=torch.Generator().manual_seed(5)).to(dtype)
    inputs = [means, scales, rots, colors, opac]
    out, grads = _grads(lambda m, s, r, c, o: F.render(m, s, r, c, h, w, mode="sum", backend="cpu", opacities=o),
                        inputs, upstream)
    out_ref, grads_ref = _grads(lambda m, s, r, c, o: ref.render(m, s, r, c, h, w, mode="sum", opacities=o),
                                inputs, upstream)
    close(out, out_ref, rel, "image")
    for name, g, g_ref in zip(("means", "scales", "rotations", "colors", "opacities"), grads, grads_ref):
        close(g, g_ref, rel * 10, name)


@pytest.mark.parametrize("mode,k", [("sum", 10), ("topk", 5), ("topk-hard", 5)])
@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_no_tiles_matches_tiled(cpu_ext, make_scene, close, mode, k, backend):
    h, w = 40, 37
    xys, radii, conics, tiles, colors = _projected(make_scene, 70, h, w, 3, torch.float64, seed=7)
    upstream = torch.randn(h, w, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    out_nt, g_nt = _grads(lambda x, c, col: F.rasterize_gaussians_no_tiles(x, radii, c, col, h, w, mode=mode, k=k,
                                                                           backend=backend),
                          [xys, conics, colors], upstream)
    out_t, g_t = _grads(lambda x, c, col: ref.rasterize_gaussians_sum(x, radii, c, tiles, col, h, w, mode=mode, k=k),
                        [xys, conics, colors], upstream)
    close(out_nt, out_t, 1e-10, "image")
    for g1, g2 in zip(g_nt, g_t):
        close(g1, g2, 1e-9, "grad")


@pytest.mark.parametrize("channels", [5, 12])
@pytest.mark.parametrize("mode", ["sum", "topk"])
def test_many_channels(cpu_ext, make_scene, close, mode, channels):
    # 12 channels: past the 16-lane accumulators of the float top-K backward (6 moments + C), its scalar form.
    h, w = 30, 30
    xys, radii, conics, tiles, colors = _projected(make_scene, 40, h, w, channels, torch.float32, seed=9)
    up = torch.randn(h, w, channels, generator=torch.Generator().manual_seed(10))
    out, g = _grads(lambda x, c, col: F.rasterize_gaussians_sum(x, radii, c, tiles, col, h, w, mode=mode,
                                                               backend="cpu"), [xys, conics, colors], up)
    out_r, g_r = _grads(lambda x, c, col: ref.rasterize_gaussians_sum(x, radii, c, tiles, col, h, w, mode=mode),
                        [xys, conics, colors], up)
    close(out, out_r, 1e-5, mode)
    for a, b in zip(g, g_r):
        close(a, b, 1e-4, mode)


@pytest.mark.parametrize("k", [1, 6, 10])
def test_topk_backward_vector_and_scalar_forms_agree_bit_for_bit(cpu_ext, make_scene, k):
    """The float top-K backward accumulates in 16-lane vectors up to 10 channels and in scalars above.
    Nine extra channels of zero colour and zero upstream gradient add exact zeros to every sum, so the
    12-channel (scalar) gradients of the first three channels must equal the 3-channel (vector) ones."""
    h, w = 45, 61
    xys, radii, conics, tiles, colors = _projected(make_scene, 300, h, w, 3, torch.float32, seed=21)
    up = torch.randn(h, w, 3, generator=torch.Generator().manual_seed(22))
    wide = torch.cat([colors, torch.zeros(colors.shape[0], 9)], dim=1)
    up_wide = torch.cat([up, torch.zeros(h, w, 9)], dim=2)

    def run(col, upstream):
        return _grads(lambda x, c, cl: F.rasterize_gaussians_sum(x, radii, c, tiles, cl, h, w, mode="topk", k=k,
                                                                 backend="cpu"), [xys, conics, col], upstream)

    out3, (gx3, gc3, gcol3) = run(colors, up)
    out12, (gx12, gc12, gcol12) = run(wide, up_wide)
    for a, b in ((out3, out12[..., :3]), (gx3, gx12), (gc3, gc12), (gcol3, gcol12[:, :3])):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert gx3.abs().sum() > 0 and gcol3.abs().sum() > 0


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_topk_ties_prefer_lower_index(cpu_ext, backend):
    """Three identical Gaussians with different colours: K = 1 keeps the first, K = 2 the first two."""
    h, w = 12, 12
    means = torch.tensor([[0.5, 0.5]] * 3)
    scales = torch.full((3, 2), 0.5)  # covers the whole image
    rots = torch.zeros(3)
    colors = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    one = F.render(means, scales, rots, colors, h, w, mode="topk", k=1, backend=backend)
    two = F.render(means, scales, rots, colors, h, w, mode="topk", k=2, backend=backend)
    first = F.render(means[:1], scales[:1], rots[:1], colors[:1], h, w, mode="topk", k=1, backend=backend)
    assert (one[..., 1:] == 0).all() and (one[..., 0] > 0.9).all()
    torch.testing.assert_close(one, first, rtol=0, atol=0)  # exactly the first Gaussian alone
    assert (two[..., 2] == 0).all()
    torch.testing.assert_close(two[..., 0], two[..., 1], rtol=0, atol=0)


@pytest.mark.parametrize("dtype,rel", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@pytest.mark.parametrize("k", [1, 4, 16, 20])
def test_topk_with_duplicated_gaussians_keeps_the_lowest_indices(cpu_ext, make_scene, close, dtype, rel, k):
    """Copies of Gaussians interleaved among distinct ones (a tile with equal sort keys takes the kernel's
    tie path: the lists' order tested in the vector test): the same K entries as the reference, whose ties
    go to the lower index; K = 16 and 20 on both sides of the 16-wide AVX-512 lists."""
    h, w = 40, 56
    means, scales, rots, colors = make_scene(30, h, w, dtype=dtype, seed=5)
    g = torch.Generator().manual_seed(1)
    copies = torch.randint(0, 30, (40,), generator=g)
    perm = torch.randperm(70, generator=g)
    means, scales, rots = (torch.cat([t, t[copies]])[perm] for t in (means, scales, rots))
    colors = torch.rand(70, 3, generator=g, dtype=dtype)  # copies differ in colour: which one is kept shows
    upstream = torch.rand(h, w, 3, generator=g, dtype=dtype)
    out, grads = _grads(lambda m, s, r, c: F.render(m, s, r, c, h, w, mode="topk", k=k, backend="cpu"),
                        (means, scales, rots, colors), upstream)
    out_ref, grads_ref = _grads(lambda m, s, r, c: ref.render(m, s, r, c, h, w, mode="topk", k=k),
                                (means, scales, rots, colors), upstream)
    close(out, out_ref, rel, "image")
    for name, a, b in zip(("means", "scales", "rotations", "colors"), grads, grads_ref):
        close(a, b, rel * 100, name)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_tie_with_a_lower_index_arriving_last_still_enters(cpu_ext, dtype):
    """Two Gaussians point-symmetric about pixel (20, 10) tie there exactly; the one with the higher index
    is nearer the tile's centre, so it is visited first and fills the K = 1 list. The lower index must
    still replace it (the reference's tie rule), also in a tile that takes the tie path (two copies of a
    third Gaussian give it equal sort keys)."""
    h, w = 32, 64  # powers of two: the centres in pixels are exact
    px = torch.tensor([[20.5 - 3.25, 10.5 - 1.5], [20.5 + 3.25, 10.5 + 1.5], [30.5, 2.5], [30.5, 2.5]])
    means = (px / torch.tensor([w, h])).to(dtype)
    scales = torch.tensor([[6.0, 6.0], [6.0, 6.0], [0.5, 0.5], [0.5, 0.5]], dtype=dtype) / torch.tensor([w, h])
    rots = torch.zeros(4, dtype=dtype)
    colors = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [0, 0, 1.0]], dtype=dtype)
    for order in ([0, 1, 2, 3], [0, 1]):  # with the copies (tie path) and without
        idx = torch.tensor(order)
        out = F.render(means[idx], scales[idx], rots[idx], colors[idx], h, w, mode="topk", k=1, backend="cpu")
        assert out[10, 20, 0] > 0.9 and out[10, 20, 1] == 0, out[10, 20]  # Gaussian 0, not 1
        expected = ref.render(means[idx], scales[idx], rots[idx], colors[idx], h, w, mode="topk", k=1)
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


def test_topk_selects_largest_weights(cpu_ext):
    """A pixel covered by a strong and a weak Gaussian: K = 1 shows only the strong one's colour."""
    means = torch.tensor([[0.5, 0.5], [0.52, 0.5]])
    scales = torch.tensor([[0.3, 0.3], [0.05, 0.05]])
    colors = torch.tensor([[1.0], [0.0]])
    img = F.render(means, scales, torch.zeros(2), colors, 9, 9, mode="topk", k=1, backend="cpu")
    centre = img[4, 4, 0]
    v = 1.0 - math.exp(-4.5)  # the left Gaussian (w = 1 at the centre, less the cutoff's floor) wins
    assert abs(float(centre) - v / (v + 0.01)) < 1e-3
    img2 = F.render(means, scales, torch.zeros(2), colors, 9, 9, mode="topk", k=2, backend="cpu")
    assert float(img2[4, 4, 0]) < float(centre)  # the second (black) one now counts


@pytest.mark.parametrize("mode", ["sum", "topk"])
def test_only_needed_gradients(cpu_ext, make_scene, close, mode):
    h, w = 32, 32
    means, scales, rots, colors = make_scene(30, h, w, dtype=torch.float32, seed=11)
    colors = colors.clone().requires_grad_(True)
    F.render(means, scales, rots, colors, h, w, mode=mode, backend="cpu").sum().backward()
    c_ref = colors.detach().clone().requires_grad_(True)
    ref.render(means, scales, rots, c_ref, h, w, mode=mode).sum().backward()
    close(colors.grad, c_ref.grad, 1e-4, "colors")


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_topk_is_continuous_at_the_cutoff(cpu_ext, backend):
    """One Gaussian slides away from a pixel that a second one covers well: as the first crosses the pixel's
    3-sigma cutoff, "topk" changes the pixel by no more than its motion does, "topk-hard" jumps by about
    e^-4.5 / sum w of the colour difference (what made the loss climb late in a fit: docs/training.md)."""
    h = w = 9
    scales = torch.tensor([[0.4 / w, 0.4 / h], [3.0 / w, 3.0 / h]], dtype=torch.float64)
    colors = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    rots = torch.zeros(2, dtype=torch.float64)
    # The pixel (4, 4) at (4.5, 4.5); the small Gaussian's q there is (d / 0.4)^2: 9 at d = 1.2 pixels.
    ds = torch.linspace(1.15, 1.25, 41, dtype=torch.float64)

    def pixel(mode):
        vals = []
        for d in ds:
            means = torch.tensor([[(4.5 + float(d)) / w, 4.5 / h], [4.5 / w, 4.5 / h]], dtype=torch.float64)
            vals.append(float(F.render(means, scales, rots, colors, h, w, mode=mode, k=2, backend=backend)[4, 4, 0]))
        return torch.tensor(vals)

    step = float(ds[1] - ds[0])
    soft, hard = pixel("topk").diff().abs(), pixel("topk-hard").diff().abs()
    # The pixel is ~ v1 / (v1 + 0.99): its slope in d is at most |dv1/dd| = e^-q/2 * d / 0.16 < 0.12 on
    # this range (largest at d = 1.15), so a step of `step` pixels moves it by < 0.12 * step ...
    assert float(soft.max()) < 0.12 * step
    # ... where the hard cutoff jumps by e^-4.5 / (e^-4.5 + 1) = 0.011 at d = 1.2.
    assert float(hard.max()) > 0.0105
