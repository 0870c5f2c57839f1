"""Shared fixtures: the native extensions are built once per test session (the build cache makes later
sessions load them in milliseconds), and random scenes of realistic Gaussians."""

from __future__ import annotations

import math

import pytest
import torch

from lgi_gsplat2d import _backend


@pytest.fixture(scope="session")
def cpu_ext():
    """The CPU extension; a build failure fails the tests that need it (with the build's explanation)."""
    return _backend.load("cpu")


@pytest.fixture(scope="session")
def cuda_ext():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    return _backend.load("cuda")


def scene(n, height, width, *, channels=3, dtype=torch.float64, seed=0, sigma_px=None, device="cpu"):
    """n Gaussians in the unit square with standard deviations of about 0.5-2 x sqrt(area / n) pixels,
    random rotations and colours in [0, 1]. Returns (means, scales, rotations, colors)."""
    g = torch.Generator().manual_seed(seed)
    base = sigma_px if sigma_px is not None else math.sqrt(height * width / max(n, 1))
    means = torch.rand(n, 2, generator=g, dtype=torch.float64)
    sig = (0.5 + 1.5 * torch.rand(n, 2, generator=g, dtype=torch.float64)) * base
    scales = sig / torch.tensor([width, height], dtype=torch.float64)
    rotations = (torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1) * math.pi
    colors = torch.rand(n, channels, generator=g, dtype=torch.float64)
    return tuple(t.to(dtype=dtype, device=device) for t in (means, scales, rotations, colors))


@pytest.fixture
def make_scene():
    return scene


def assert_close_scaled(actual, expected, rel, what=""):
    """max |actual - expected| <= rel * max(1, max |expected|): a tolerance relative to the tensor's scale,
    right for sums of many float32 terms whose order differs between implementations."""
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    assert torch.isfinite(actual).all(), f"{what}: non-finite values"
    actual, expected = actual.detach(), expected.detach()
    scale = max(1.0, float(expected.abs().max())) if expected.numel() else 1.0
    err = float((actual.double() - expected.double()).abs().max()) if expected.numel() else 0.0
    assert err <= rel * scale, f"{what}: max error {err:.3g} > {rel:g} x {scale:.3g}"


@pytest.fixture
def close():
    return assert_close_scaled
