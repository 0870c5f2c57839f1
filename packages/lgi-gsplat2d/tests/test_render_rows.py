"""render_rows: a band of rows of the image, with gradients that add up to the whole image's."""

from __future__ import annotations

import pytest
import torch

from lgi_gsplat2d import functional as F

BANDS = [(0, 7), (7, 8), (8, 30), (30, 47)]  # uneven, one a single row, none on a tile boundary


def _leaves(inputs):
    return [t.clone().requires_grad_(True) for t in inputs]


@pytest.mark.parametrize("backend", ["cpu", "torch"])
@pytest.mark.parametrize("mode", ["sum", "topk"])
def test_bands_of_rows_are_the_rows_of_the_whole_render(cpu_ext, make_scene, backend, mode):
    h, w = 47, 38
    inputs = make_scene(60, h, w, dtype=torch.float64, seed=3)
    whole = F.render(*inputs, h, w, mode=mode, k=5, backend=backend)
    for y0, y1 in BANDS:
        band = F.render_rows(*inputs, h, w, (y0, y1), mode=mode, k=5, backend=backend)
        assert band.shape == (y1 - y0, w, 3)
        torch.testing.assert_close(band, whole[y0:y1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["sum", "topk"])
def test_the_whole_height_is_render_bit_for_bit(cpu_ext, make_scene, mode):
    inputs = make_scene(40, 33, 29, dtype=torch.float32, seed=4)
    assert torch.equal(F.render_rows(*inputs, 33, 29, (0, 33), mode=mode, k=6, backend="cpu"),
                       F.render(*inputs, 33, 29, mode=mode, k=6, backend="cpu"))


@pytest.mark.parametrize("backend", ["cpu", "torch"])
@pytest.mark.parametrize("mode", ["sum", "topk"])
def test_band_gradients_add_up_to_the_whole_images(cpu_ext, make_scene, backend, mode):
    """A loss summed band by band, each band's backward on its own, gives the whole render's gradients."""
    h, w = 47, 38
    inputs = make_scene(60, h, w, dtype=torch.float64, seed=5)
    target = torch.rand(h, w, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    whole = _leaves(inputs)
    ((F.render(*whole, h, w, mode=mode, k=5, backend=backend) - target) ** 2).sum().backward()
    banded = _leaves(inputs)
    for y0, y1 in BANDS:
        band = F.render_rows(*banded, h, w, (y0, y1), mode=mode, k=5, backend=backend)
        ((band - target[y0:y1]) ** 2).sum().backward()
    for name, a, b in zip(("means", "scales", "rotations", "colors"), banded, whole):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-9, msg=name)


def test_a_band_no_gaussian_reaches_is_empty(cpu_ext):
    means = torch.tensor([[0.5, 0.1]], dtype=torch.float64)
    scales = torch.tensor([[0.01, 0.01]], dtype=torch.float64)
    rot, colors = torch.zeros(1, dtype=torch.float64), torch.ones(1, 3, dtype=torch.float64)
    band = F.render_rows(means, scales, rot, colors, 100, 100, (60, 80), mode="topk", k=4, backend="cpu")
    assert band.shape == (20, 100, 3) and not band.any()


def test_rows_outside_the_image_are_refused(cpu_ext, make_scene):
    inputs = make_scene(5, 10, 10)
    for rows in [(0, 11), (5, 5), (-1, 3)]:
        with pytest.raises(ValueError, match="not a band"):
            F.render_rows(*inputs, 10, 10, rows, backend="cpu")


def test_rows_rasterized_from_one_projection_are_render_rows(cpu_ext, make_scene):
    h, w = 47, 38
    inputs = make_scene(60, h, w, dtype=torch.float64, seed=6, sigma_px=2.0)
    xys, radii, conics, _ = F.project_gaussians_2d_scale_rot(*inputs[:3], h, w, backend="cpu")
    spans = F.row_spans(xys, radii, h, w)
    for rows in BANDS:
        idx = F.gaussians_in_rows(spans, rows)
        assert idx.numel() < 60 and bool((idx[1:] > idx[:-1]).all())
        band = F.rasterize_rows(xys[idx], radii[idx], conics[idx], inputs[3][idx], w, rows, mode="topk", k=5,
                                backend="cpu")
        assert torch.equal(band, F.render_rows(*inputs, h, w, rows, mode="topk", k=5, backend="cpu"))
