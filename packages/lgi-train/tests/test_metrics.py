"""Metrics: values on known cases, and optional metrics that say what is missing."""

from __future__ import annotations

import math

import pytest
import torch

from lgi_train import metrics


def test_psnr_and_ssim_known_values():
    x = torch.full((3, 32, 32), 0.5, dtype=torch.float64)
    y = x + 0.1
    assert metrics.psnr(x, y) == pytest.approx(20.0, abs=1e-6)
    assert metrics.psnr(x, x) == math.inf
    assert metrics.ssim(x, x) == pytest.approx(1.0, abs=1e-6)
    assert metrics.ssim(torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64), x) < 0.2


def test_ms_ssim_needs_large_images():
    with pytest.raises(ValueError, match="160"):
        metrics.ms_ssim(torch.rand(3, 64, 64), torch.rand(3, 64, 64))
    x = torch.rand(3, 192, 192, generator=torch.Generator().manual_seed(1))
    assert metrics.ms_ssim(x, x) == pytest.approx(1.0, abs=1e-5)


def test_quantize_8bit():
    x = torch.tensor([-0.2, 0.0, 0.5, 1.3])
    assert torch.equal(metrics.quantize_8bit(x), torch.tensor([0.0, 0.0, 128.0, 255.0]) / 255)


def test_flip_when_installed():
    pytest.importorskip("flip_evaluator")
    x = torch.rand(3, 48, 48, generator=torch.Generator().manual_seed(2))
    noisy = (x + 0.1 * torch.randn(3, 48, 48, generator=torch.Generator().manual_seed(3))).clamp(0, 1)
    assert metrics.flip(x, x) == pytest.approx(0.0, abs=1e-9)
    assert 0 < metrics.flip(noisy, x) < 1
    assert "flip" in metrics.evaluate(noisy, x)


def test_lpips_without_package_or_weights_is_a_clear_error():
    x = torch.rand(3, 32, 32)
    with pytest.raises(metrics.MetricUnavailable, match="lpips|weights"):
        metrics.lpips(x, x, None)
