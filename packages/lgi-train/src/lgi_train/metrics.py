"""Image quality metrics: PSNR, SSIM, MS-SSIM; LPIPS and FLIP where their packages are installed.

Inputs are [C, H, W] or [B, C, H, W] tensors in [0, 1]. PSNR is computed on the values given; the
codec's reported PSNR is on 8-bit RGB after rounding (``quantize_8bit``), as classical codecs are.
"""

from __future__ import annotations

import math

import torch


class MetricUnavailable(RuntimeError):
    """An optional metric's package or weights are missing; the message says what to install."""


def _batched(x: torch.Tensor) -> torch.Tensor:
    return x[None] if x.dim() == 3 else x


def quantize_8bit(x: torch.Tensor) -> torch.Tensor:
    """Round to 8-bit levels, as writing a PNG does."""
    return torch.round(x.clamp(0, 1) * 255) / 255


def psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    mse = float(torch.mean((x.double() - y.double()) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


def ssim(x: torch.Tensor, y: torch.Tensor) -> float:
    """SSIM with pytorch_msssim's conventions (11×11 Gaussian window, σ = 1.5, valid filtering)."""
    from pytorch_msssim import ssim as _ssim

    return float(_ssim(_batched(x).float(), _batched(y).float(), data_range=1.0, size_average=True))


def ms_ssim(x: torch.Tensor, y: torch.Tensor) -> float:
    """MS-SSIM (5 scales); needs both sides > 160 px, else raises ValueError."""
    from pytorch_msssim import ms_ssim as _ms_ssim

    if min(x.shape[-2:]) <= 160:
        raise ValueError(f"MS-SSIM needs images larger than 160 px per side, got {tuple(x.shape[-2:])}")
    return float(_ms_ssim(_batched(x).float(), _batched(y).float(), data_range=1.0, size_average=True))


def lpips(x: torch.Tensor, y: torch.Tensor, weights: str | None) -> float:
    """LPIPS (AlexNet). Needs the `lpips` package and local weights (no downloads here)."""
    try:
        import lpips as _lpips
    except ImportError:
        raise MetricUnavailable("LPIPS needs the `lpips` package: pip install 'lgi-train[lpips]'") from None
    if not weights:
        raise MetricUnavailable("LPIPS needs a local weights file (pretrained backbones cannot be downloaded)")
    net = _lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, model_path=weights, verbose=False)
    with torch.no_grad():
        return float(net(_batched(x).float() * 2 - 1, _batched(y).float() * 2 - 1).mean())


def flip(x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean LDR-FLIP error (NVIDIA's `flip-evaluator` package)."""
    try:
        import flip_evaluator
    except ImportError:
        raise MetricUnavailable("FLIP needs the `flip-evaluator` package: pip install flip-evaluator") from None
    ref = _batched(y)[0].permute(1, 2, 0).double().cpu().numpy()
    test = _batched(x)[0].permute(1, 2, 0).double().cpu().numpy()
    _, mean_error, _ = flip_evaluator.evaluate(ref, test, "LDR")
    return float(mean_error)


def evaluate(x: torch.Tensor, y: torch.Tensor, lpips_weights: str | None = None) -> dict[str, float]:
    """Every metric that can run here; unavailable ones are omitted."""
    out = {"psnr": psnr(x, y), "ssim": ssim(x, y)}
    if min(x.shape[-2:]) > 160:
        out["ms_ssim"] = ms_ssim(x, y)
    for name, fn in (("lpips", lambda: lpips(x, y, lpips_weights)), ("flip", lambda: flip(x, y))):
        try:
            out[name] = fn()
        except MetricUnavailable:
            pass
    return out
