"""Shared fixtures: the CPU extension is built (or loaded from the cache) once per test session."""

from __future__ import annotations

import pytest
import torch

from lgi_fused_ssim import _backend


@pytest.fixture(scope="session")
def cpu_ops():
    """The compiled CPU extension; the first use in a session builds it (30-70 s once per machine)."""
    return _backend.build("cpu")


def _image_pair(shape, seed=0, dtype=torch.float32, device="cpu", noise=0.15):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=gen, dtype=torch.float64)
    y = (x + noise * torch.randn(shape, generator=gen, dtype=torch.float64)).clamp(0, 1)
    return x.to(dtype=dtype, device=device), y.to(dtype=dtype, device=device)


@pytest.fixture
def image_pair():
    """make(shape, seed=0, dtype=float32, device="cpu", noise=0.15) -> (x, y): a random image in [0, 1]
    and a noisy copy (clamped), so that SSIM is neither 0 nor 1."""
    return _image_pair
