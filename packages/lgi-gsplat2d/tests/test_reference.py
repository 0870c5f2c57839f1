"""The PyTorch reference itself: gradcheck, agreement with a naive dense evaluation, bounded chunks."""

from __future__ import annotations

import math

import pytest
import torch

from lgi_gsplat2d import _reference as ref


def _naive(means, scales, rots, colors, h, w, mode, k, opacities=None):
    """Straight from the definitions, in unit-square coordinates, all N x H x W at once (tiny inputs only)."""
    c, s = torch.cos(rots), torch.sin(rots)
    R = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
    sigma = R @ torch.diag_embed(scales**2) @ R.transpose(-1, -2)
    A = torch.diag(torch.tensor([w, h], dtype=means.dtype))
    inv = torch.linalg.inv(A @ sigma @ A)
    jj, ii = torch.meshgrid(torch.arange(w, dtype=means.dtype), torch.arange(h, dtype=means.dtype), indexing="xy")
    d = torch.stack([jj + 0.5, ii + 0.5], -1)[:, :, None, :] - (means * torch.tensor([w, h]))  # [H, W, N, 2]
    q = torch.einsum("hwni,nij,hwnj->hwn", d, inv, d)
    wgt = torch.where(q <= 9, torch.exp(-0.5 * q), 0.0)
    if mode == "sum":
        o = opacities if opacities is not None else torch.ones(len(means), dtype=means.dtype)
        return torch.einsum("hwn,n,nc->hwc", wgt, o, colors)
    top = torch.topk(wgt, min(k, len(means)), dim=-1)
    v = top.values
    if mode == "topk":  # continuous at the cutoff: exp(-q/2) - exp(-4.5), 0 outside
        v = torch.where(v > 0, v - math.exp(-4.5), 0.0)
    num = (v[..., None] * colors[top.indices]).sum(-2)
    return num / (v.sum(-1, keepdim=True) + (0.01 if mode == "topk" else 1e-4))  # common.h: topk_eps


@pytest.mark.parametrize("mode,k", [("sum", 0), ("topk", 1), ("topk", 3), ("topk-hard", 1), ("topk-hard", 3)])
def test_reference_matches_naive(make_scene, mode, k):
    h, w = 23, 31
    means, scales, rots, colors = make_scene(25, h, w, dtype=torch.float64, seed=k)
    opac = torch.rand(25, dtype=torch.float64) if mode == "sum" else None
    out = ref.render(means, scales, rots, colors, h, w, mode=mode, k=max(k, 1), opacities=opac)
    torch.testing.assert_close(out, _naive(means, scales, rots, colors, h, w, mode, k, opac), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("mode", ["sum", "topk", "topk-hard"])
def test_gradcheck_reference_float64(mode):
    g = torch.Generator().manual_seed(3)
    n, h, w = 5, 11, 9
    means = 0.2 + 0.6 * torch.rand(n, 2, dtype=torch.float64, generator=g)
    scales = 0.1 + 0.15 * torch.rand(n, 2, dtype=torch.float64, generator=g)
    rots = torch.rand(n, dtype=torch.float64, generator=g) * 3
    colors = torch.rand(n, 3, dtype=torch.float64, generator=g)
    args = [means, scales, rots, colors]
    if mode == "sum":
        args.append(torch.rand(n, dtype=torch.float64, generator=g))
    args = [a.requires_grad_(True) for a in args]

    def fn(m, s, r, c, *o):
        return ref.render(m, s, r, c, h, w, mode=mode, k=2, opacities=o[0] if o else None)

    assert torch.autograd.gradcheck(fn, tuple(args), eps=1e-6, atol=1e-6)


def test_chunking_does_not_change_results(make_scene, monkeypatch):
    """Force the pixel sub-chunks down to single rows: same image and gradients, bit for bit."""
    h, w = 40, 40
    inputs = make_scene(60, h, w, dtype=torch.float64, seed=5)
    results = []
    for budget in (1 << 21, 1):
        monkeypatch.setattr(ref, "_BUDGET", budget)
        leaves = [t.clone().requires_grad_(True) for t in inputs]
        out = ref.render(*leaves, h, w, mode="topk", k=4)
        out.square().sum().backward()
        results.append([out.detach()] + [t.grad for t in leaves])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-15)


def test_blocks_see_only_overlapping_gaussians(make_scene, monkeypatch):
    """The reference never evaluates all N Gaussians on all pixels: each block gets only its overlaps."""
    h, w = 256, 256
    means, scales, rots, colors = make_scene(400, h, w, dtype=torch.float32, seed=6, sigma_px=2.0)
    seen = []
    original = ref._block

    def spy(xys, conics, colors_, opacities, idx, box, rows, cols, mode, k):
        seen.append(idx.numel() * rows.numel() * cols.numel())
        return original(xys, conics, colors_, opacities, idx, box, rows, cols, mode, k)

    monkeypatch.setattr(ref, "_block", spy)
    ref.render(means, scales, rots, colors, h, w, mode="sum")
    assert max(seen) <= ref._BUDGET and sum(seen) < 0.1 * 400 * h * w
