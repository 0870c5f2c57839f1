"""The pure-PyTorch reference against pytorch_msssim, a direct 2D convolution, and gradcheck."""

from __future__ import annotations

import importlib

import pytest
import torch
import torch.nn.functional as F

from lgi_fused_ssim import ssim_map_reference, ssim_reference
from lgi_fused_ssim._reference import C1, C2, gaussian_window

pytorch_msssim = pytest.importorskip("pytorch_msssim")

SHAPES = [(1, 3, 32, 48), (2, 1, 11, 11), (3, 3, 37, 53), (1, 1, 64, 17)]


def test_window_is_the_normalised_gaussian_of_pytorch_msssim():
    g = gaussian_window(torch.float64)
    assert g.shape == (11,)
    assert torch.isclose(g.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert torch.equal(g, g.flip(0))
    ref = importlib.import_module("pytorch_msssim.ssim")._fspecial_gauss_1d(11, 1.5).flatten().double()
    torch.testing.assert_close(g, ref, rtol=0, atol=1e-7)


@pytest.mark.parametrize("shape", SHAPES)
def test_valid_equals_pytorch_msssim(shape, image_pair):
    x, y = image_pair(shape)
    got = ssim_reference(x, y, "valid")
    want = pytorch_msssim.ssim(x, y, data_range=1, size_average=True)
    assert abs(got.item() - want.item()) < 1e-5


def _direct_ssim_map(x, y, pad):
    """SSIM with one dense 11x11 convolution per moment (no separability), float64."""
    c = x.shape[1]
    g = gaussian_window(torch.float64)
    w = torch.outer(g, g).expand(c, 1, 11, 11)

    def blur(t):
        return F.conv2d(t, w, padding=pad, groups=c)

    mu1, mu2 = blur(x), blur(y)
    s11, s22, s12 = blur(x * x) - mu1**2, blur(y * y) - mu2**2, blur(x * y) - mu1 * mu2
    return ((2 * mu1 * mu2 + C1) * (2 * s12 + C2)) / ((mu1**2 + mu2**2 + C1) * (s11 + s22 + C2))


@pytest.mark.parametrize("padding,pad", [("same", 5), ("valid", 0)])
@pytest.mark.parametrize("shape", [(2, 3, 21, 30), (1, 1, 11, 13)])
def test_map_equals_dense_convolution(shape, padding, pad, image_pair):
    x, y = image_pair(shape, dtype=torch.float64)
    got = ssim_map_reference(x, y, padding)
    want = _direct_ssim_map(x, y, pad)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_valid_is_the_interior_of_same(image_pair):
    x, y = image_pair((1, 2, 30, 25), dtype=torch.float64)
    torch.testing.assert_close(ssim_map_reference(x, y, "valid"), ssim_map_reference(x, y, "same")[..., 5:-5, 5:-5],
                               rtol=0, atol=1e-14)


def test_identical_images_score_one(image_pair):
    x, _ = image_pair((2, 3, 20, 20), dtype=torch.float64)
    torch.testing.assert_close(ssim_map_reference(x, x, "same"), torch.ones_like(x), rtol=0, atol=1e-12)


@pytest.fixture
def one_thread():
    """Tiny float64 convolutions are dominated by waking the intra-op thread team; skip that."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("padding", ["same", "valid"])
def test_reference_gradcheck_float64(padding, image_pair, one_thread):
    x, y = image_pair((1, 2, 12, 13), dtype=torch.float64)
    x.requires_grad_(True)
    weights = torch.randn(ssim_map_reference(x, y, padding).shape, dtype=torch.float64,
                          generator=torch.Generator().manual_seed(0))
    # The full Jacobian through random projections, and one vector-Jacobian product exactly.
    assert torch.autograd.gradcheck(lambda a: ssim_map_reference(a, y, padding), (x,), eps=1e-6, atol=1e-7,
                                    fast_mode=True)
    assert torch.autograd.gradcheck(lambda a: (ssim_map_reference(a, y, padding) * weights).sum(), (x,),
                                    eps=1e-6, atol=1e-7)
