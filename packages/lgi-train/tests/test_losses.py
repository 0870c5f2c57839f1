"""The fused L2 loss and the clamped MSE of a fit step: equal to autograd's formula, in every layout."""

from __future__ import annotations

import pytest
import torch

from lgi_train.losses import clamped_mse, mean_squared_error


def _render_layout(h: int = 9, w: int = 13, c: int = 3, dtype=torch.float32, seed: int = 0) -> torch.Tensor:
    """A [C, H, W] view of a contiguous [H, W, C] leaf, as the rasterizer's renders are."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(h, w, c, generator=g, dtype=dtype) * 1.4 - 0.2).requires_grad_()


def _reference(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((x - y) ** 2).mean()


@pytest.mark.parametrize("layout", ["render", "contiguous"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_value_and_gradient_equal_autograds_formula(layout, dtype):
    leaf = _render_layout(dtype=dtype)
    target = torch.rand(3, 9, 13, generator=torch.Generator().manual_seed(1), dtype=dtype)
    x = leaf.permute(2, 0, 1) if layout == "render" else leaf.permute(2, 0, 1).contiguous()
    got = mean_squared_error(x, target)
    (g_got,) = torch.autograd.grad(got * 3.0, leaf)
    ref = _reference(x, target)
    (g_ref,) = torch.autograd.grad(ref * 3.0, leaf)
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    assert got.shape == ref.shape == ()
    assert abs(float(got.detach()) - float(ref.detach())) <= tol * float(ref.detach())
    assert torch.allclose(g_got, g_ref, rtol=tol, atol=0)


def test_a_target_that_requires_grad_gets_the_opposite_gradient():
    x = _render_layout().permute(2, 0, 1)
    y = torch.rand(3, 9, 13).requires_grad_()
    gx, gy = torch.autograd.grad(mean_squared_error(x, y), (x, y))
    rx, ry = torch.autograd.grad(_reference(x, y), (x, y))
    assert torch.allclose(gx, rx, rtol=1e-6) and torch.allclose(gy, ry, rtol=1e-6)


def test_a_new_target_at_a_freed_targets_address_is_not_mistaken_for_it():
    """The layout cache keys on the target object: one image after another in one process (rd.py)."""
    x = _render_layout().detach().permute(2, 0, 1)
    values = []
    for seed in range(6):  # each target freed before the next is made: the allocator reuses the memory
        target = torch.full((3, 9, 13), 0.1 * seed)
        values.append((float(mean_squared_error(x, target).detach()), float(_reference(x, target).detach())))
        del target
    for got, ref in values:
        assert got == pytest.approx(ref, rel=1e-6)
    assert len({round(got, 6) for got, _ in values}) == 6


def test_a_target_changed_in_place_is_read_again():
    x = _render_layout().detach().permute(2, 0, 1)
    target = torch.zeros(3, 9, 13)
    first = float(mean_squared_error(x, target))
    target.add_(0.5)
    assert float(mean_squared_error(x, target)) == pytest.approx(float(_reference(x, target)), rel=1e-6)
    assert float(mean_squared_error(x, target)) != pytest.approx(first)


def test_mixed_dtypes_and_shapes():
    x = _render_layout().detach().permute(2, 0, 1)
    y = torch.rand(3, 9, 13, dtype=torch.float64)
    assert float(mean_squared_error(x, y)) == pytest.approx(float(_reference(x, y)), rel=1e-6)
    with pytest.raises(ValueError, match="shapes"):
        mean_squared_error(x, torch.rand(3, 9, 12))


@pytest.mark.parametrize("layout", ["render", "contiguous"])
def test_clamped_mse_reads_the_displayed_image(layout):
    leaf = _render_layout()
    x = leaf.permute(2, 0, 1) if layout == "render" else leaf.detach().permute(2, 0, 1).contiguous()
    target = torch.rand(3, 9, 13)
    ref = float(((x.detach().clamp(0, 1) - target) ** 2).mean())
    assert clamped_mse(x, target) == pytest.approx(ref, rel=1e-6)
    assert x.detach().min() < 0 and x.detach().max() > 1  # the clamp mattered
    assert float(((x.detach() - target) ** 2).mean()) != pytest.approx(ref, rel=1e-6)


def test_the_memory_order_cache_keeps_no_target_alive():
    """The [H, W, C] copy of a target is made once per target and dropped with it: a finished fit's
    image is not held until the next one (24 bytes a pixel), and a new target at a freed one's address
    gets its own copy."""
    import gc
    import weakref

    from lgi_train.losses import _memory_order, mean_squared_error

    render = torch.rand(8, 9, 3).permute(2, 0, 1)  # the rasterizer's layout: [C, H, W] of an [H, W, C]
    target = torch.rand(3, 8, 9)
    want = float(((render - target) ** 2).mean())
    assert abs(float(mean_squared_error(render, target)) - want) < 1e-6
    copy = weakref.ref(_memory_order._entry[2])
    assert _memory_order._entry[0]() is target
    del target
    gc.collect()
    assert _memory_order._entry is None and copy() is None
    other = torch.rand(3, 8, 9)
    assert abs(float(mean_squared_error(render, other)) - float(((render - other) ** 2).mean())) < 1e-6
