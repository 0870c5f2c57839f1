"""Training losses: L1 + λ·(1 − SSIM) (Image-GS's default, λ = 0.1), L1, L2, MS-SSIM, L1 + LPIPS."""

from __future__ import annotations

from collections.abc import Callable

import torch

from lgi_train.config import FitConfig


def make_loss(cfg: FitConfig) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A function (render [C, H, W], target [C, H, W]) → scalar loss."""
    if cfg.loss == "l1":
        return lambda x, y: (x - y).abs().mean()
    if cfg.loss == "l2":
        return lambda x, y: ((x - y) ** 2).mean()
    if cfg.loss == "l1_ssim":
        from lgi_fused_ssim import fused_ssim

        lam = cfg.ssim_weight
        backend = cfg.backend

        def l1_ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            l1 = (x - y).abs().mean()
            if lam == 0:
                return l1
            return l1 + lam * (1 - fused_ssim(x[None], y[None], padding="same", backend=backend))

        return l1_ssim
    if cfg.loss == "ms_ssim":
        from pytorch_msssim import ms_ssim

        def msssim_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            if min(x.shape[-2:]) <= 160:
                raise ValueError("the ms_ssim loss needs images larger than 160 px per side")
            return 1 - ms_ssim(x[None], y[None], data_range=1.0, size_average=True)

        return msssim_loss
    if cfg.loss == "l1_lpips":
        from lgi_train.metrics import MetricUnavailable

        try:
            import lpips as _lpips
        except ImportError:
            raise MetricUnavailable("the l1_lpips loss needs the `lpips` package") from None
        if not cfg.lpips_weights:
            raise MetricUnavailable("the l1_lpips loss needs lpips_weights: a local weights file")
        net = _lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, model_path=cfg.lpips_weights,
                           verbose=False)
        for p in net.parameters():
            p.requires_grad_(False)
        w = cfg.lpips_weight
        return lambda x, y: (x - y).abs().mean() + w * net(x[None] * 2 - 1, y[None] * 2 - 1).mean()
    raise ValueError(f"unknown loss {cfg.loss!r}")
