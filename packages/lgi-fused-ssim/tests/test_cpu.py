"""The C++/OpenMP kernel against the reference: values, gradients, determinism, what is saved."""

from __future__ import annotations

import pytest
import torch

from lgi_fused_ssim import fused_ssim, fused_ssim_map, ssim_map_reference

pytorch_msssim = pytest.importorskip("pytorch_msssim")

# B > 1, 1 and 3 channels, the smallest legal image, odd and non-square sizes.
SHAPES = [(1, 3, 32, 48), (2, 1, 11, 11), (3, 3, 37, 53), (1, 1, 64, 17), (2, 3, 23, 12)]
PADDINGS = ["same", "valid"]


def _grad(out, x):
    (g,) = torch.autograd.grad(out, x)
    return g


def _assert_grad_close(got, want):
    # Gradients of a mean scale like 1 / numel: compare relative to the largest component.
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * want.abs().max().item())


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_matches_reference(cpu_ops, image_pair, shape, padding):
    x, y = image_pair(shape)
    got = fused_ssim_map(x, y, padding, backend="cpu")
    want = ssim_map_reference(x.double(), y.double(), padding)
    assert got.shape == want.shape
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), want, rtol=0, atol=1e-5)
    mean = fused_ssim(x, y, padding, backend="cpu")
    assert mean.shape == ()
    assert abs(mean.item() - want.mean().item()) < 1e-6


@pytest.mark.parametrize("shape", SHAPES)
def test_valid_equals_pytorch_msssim(cpu_ops, image_pair, shape):
    x, y = image_pair(shape, seed=3)
    got = fused_ssim(x, y, "valid", backend="cpu")
    want = pytorch_msssim.ssim(x, y, data_range=1, size_average=True)
    assert abs(got.item() - want.item()) < 1e-5


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("shape", SHAPES)
def test_gradient_of_mean_matches_reference_autograd(cpu_ops, image_pair, shape, padding):
    x, y = image_pair(shape, seed=1)
    x.requires_grad_(True)
    got = _grad(fused_ssim(x, y, padding, backend="cpu"), x)
    want = _grad(ssim_map_reference(x, y, padding).mean(), x)
    _assert_grad_close(got, want)


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("shape", SHAPES[:3])
def test_gradient_of_map_with_any_upstream_gradient(cpu_ops, image_pair, shape, padding):
    x, y = image_pair(shape, seed=2)
    x.requires_grad_(True)
    weights = torch.randn(ssim_map_reference(x, y, padding).shape, generator=torch.Generator().manual_seed(7))
    got = _grad((fused_ssim_map(x, y, padding, backend="cpu") * weights).sum(), x)
    want = _grad((ssim_map_reference(x, y, padding) * weights).sum(), x)
    _assert_grad_close(got, want)


def test_loss_gradient_through_a_graph(cpu_ops, image_pair):
    """1 - SSIM inside a larger loss, as the fitter uses it."""
    x, y = image_pair((1, 3, 40, 40), seed=4)
    p = x.clone().requires_grad_(True)
    got = _grad(0.8 * (p - y).abs().mean() + 0.2 * (1 - fused_ssim(p * 0.9, y, backend="cpu")), p)
    want = _grad(0.8 * (p - y).abs().mean() + 0.2 * (1 - ssim_map_reference(p * 0.9, y).mean()), p)
    _assert_grad_close(got, want)


def test_values_outside_unit_range_follow_the_reference(cpu_ops, image_pair):
    """No clamping: values in [-0.5, 1.5] give the formula's value, like the float64 reference."""
    x, y = image_pair((2, 3, 30, 30), seed=5)
    x, y = 2 * x - 0.5, 2 * y - 0.5
    x.requires_grad_(True)
    got = fused_ssim(x, y, backend="cpu")
    want = ssim_map_reference(x.double(), y.double()).mean()
    assert abs(got.item() - want.item()) < 1e-6
    _assert_grad_close(_grad(got, x), _grad(want, x).float())


def test_img2_gets_no_gradient(cpu_ops, image_pair):
    x, y = image_pair((1, 1, 16, 16))
    x.requires_grad_(True)
    y.requires_grad_(True)
    fused_ssim(x, y, backend="cpu").backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert y.grad is None


def test_non_contiguous_inputs(cpu_ops, image_pair):
    x, y = image_pair((2, 3, 24, 30))
    x_cl, y_cl = x.to(memory_format=torch.channels_last), y[..., :, :].transpose(2, 3).contiguous().transpose(2, 3)
    assert not x_cl.is_contiguous() and not y_cl.is_contiguous()
    assert torch.equal(fused_ssim_map(x_cl, y_cl, backend="cpu"), fused_ssim_map(x, y, backend="cpu"))


@pytest.mark.parametrize("padding", PADDINGS)
def test_bitwise_deterministic_across_runs_and_thread_counts(cpu_ops, image_pair, padding):
    # Large enough (> 2^15 output pixels) for the kernels to use all threads.
    x, y = image_pair((2, 3, 97, 131), seed=6)
    x.requires_grad_(True)
    weights = torch.randn(ssim_map_reference(x, y, padding).shape, generator=torch.Generator().manual_seed(8))
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3, 2):
            torch.set_num_threads(threads)
            mean = fused_ssim(x, y, padding, backend="cpu")
            ssim_map = fused_ssim_map(x, y, padding, backend="cpu")
            results.append((mean.detach(), ssim_map.detach(), _grad(mean, x), _grad((ssim_map * weights).sum(), x)))
    finally:
        torch.set_num_threads(before)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert torch.equal(a, b)


def test_train_false_saves_nothing_and_refuses_backward(cpu_ops, image_pair):
    x, y = image_pair((1, 3, 20, 20))
    x.requires_grad_(True)
    for fn in (fused_ssim, fused_ssim_map):
        out = fn(x, y, train=False, backend="cpu")
        assert out.grad_fn is not None
        assert out.grad_fn.saved_tensors == ()
        with pytest.raises(RuntimeError, match="train=False"):
            out.sum().backward()


def test_train_true_saves_the_partials(cpu_ops, image_pair):
    x, y = image_pair((2, 1, 20, 24))
    x.requires_grad_(True)
    saved = fused_ssim(x, y, "valid", backend="cpu").grad_fn.saved_tensors
    assert [tuple(t.shape) for t in saved] == [(2, 1, 20, 24)] * 2 + [(2, 1, 10, 14)] * 3


def test_no_graph_when_no_gradient_is_needed(cpu_ops, image_pair):
    x, y = image_pair((1, 3, 20, 20))
    assert fused_ssim(x, y, backend="cpu").grad_fn is None
    x.requires_grad_(True)
    with torch.no_grad():
        out = fused_ssim(x, y, backend="cpu")
    assert out.grad_fn is None and not out.requires_grad
