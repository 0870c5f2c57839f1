"""One set of Gaussians renders at any size: the parameters live in the unit square."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as nnf

from lgi_gsplat2d import functional as F


@pytest.mark.parametrize("backend", ["cpu", "torch"])
@pytest.mark.parametrize("mode", ["sum", "topk"])
def test_three_times_resolution_contains_the_original_samples(cpu_ext, make_scene, backend, mode):
    """Pixel (3i+1, 3j+1) of a 3x render has the same centre as pixel (i, j) of the 1x render."""
    h, w = 21, 26
    inputs = make_scene(40, h, w, dtype=torch.float64, seed=1)
    small = F.render(*inputs, h, w, mode=mode, k=5, backend=backend)
    big = F.render(*inputs, 3 * h, 3 * w, mode=mode, k=5, backend=backend)
    torch.testing.assert_close(big[1::3, 1::3], small, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("backend", ["cpu", "torch"])
def test_two_times_resolution_is_the_upsampled_image(cpu_ext, make_scene, backend):
    """Averaging 2x2 blocks of a 2x render gives the 1x render up to the curvature of the Gaussians over a
    pixel: for sigma >= 4 px that is below 1% of the image's range."""
    h, w = 32, 48
    inputs = make_scene(30, h, w, dtype=torch.float32, seed=2, sigma_px=6.0)
    small = F.render(*inputs, h, w, mode="sum", backend=backend)
    big = F.render(*inputs, 2 * h, 2 * w, mode="sum", backend=backend)
    down = nnf.avg_pool2d(big.permute(2, 0, 1)[None], 2)[0].permute(1, 2, 0)
    assert float((down - small).abs().max()) < 0.01 * float(small.abs().max())
