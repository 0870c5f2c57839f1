"""Training losses: L1 + λ·(1 − SSIM) (Image-GS's default, λ = 0.1), L1, L2, MS-SSIM, L1 + LPIPS."""

from __future__ import annotations

import weakref
from collections.abc import Callable

import torch

from lgi_train.config import FitConfig


class _MeanSquaredError(torch.autograd.Function):
    """mean((x − y)²) in one pass each way: the forward keeps the difference, the backward scales it.

    Autograd's ``((x - y) ** 2).mean()`` makes six passes over the image and four image-sized
    buffers (sub, pow, mean; pow's backward two multiplies, mean's a division). With the PSNR of the
    step, on a Kodak image: 3.9 ms against 1.3 of a 35–45 ms fit step (benchmarks/bench_loss_step.py).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        d = x - y
        ctx.save_for_backward(d)
        flat = d.reshape(-1)
        return torch.dot(flat, flat) / flat.numel()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (d,) = ctx.saved_tensors
        gx = d * (grad * (2.0 / d.numel()))
        return gx, (-gx if ctx.needs_input_grad[1] else None)


class _MemoryOrder:
    """A target in the memory order of the renders it is compared with, made once per target.

    Renders are [C, H, W] views of the rasterizer's contiguous [H, W, C] buffer; subtracting a
    contiguous [C, H, W] target from one walks one of the two with a stride of H·W. Comparing both as
    [H, W, C] keeps every pass sequential, and the gradient comes back in the rasterizer's own layout.
    """

    def __init__(self) -> None:
        # (a weak reference to the target, its version, the target as [H, W, C]). A reference, not the
        # address: a freed target's memory can come back as the next image's, at the same address, shape
        # and version; a weak one, so that the entry does not keep an image (24 bytes a pixel with its
        # copy) alive after its fit, e.g. between the items of `lgi batch`: when the target goes, the
        # entry goes. One tuple, replaced whole: two threads fitting at once each use the entry they read.
        self._entry: tuple[weakref.ref, int, torch.Tensor] | None = None

    def _forget(self, ref: weakref.ref) -> None:
        entry = self._entry
        if entry is not None and entry[0] is ref:
            self._entry = None

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() != 3 or x.shape != y.shape or x.is_contiguous() or not x.permute(1, 2, 0).is_contiguous():
            return x, y
        entry = self._entry
        if entry is None or entry[0]() is not y or entry[1] != y._version:
            entry = (weakref.ref(y, self._forget), y._version, y.permute(1, 2, 0).contiguous())
            self._entry = entry
        return x.permute(1, 2, 0), entry[2]


_memory_order = _MemoryOrder()


def mean_squared_error(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """mean((x − y)²) of two images of one shape, differentiable in both (the ``l2`` loss)."""
    if x.shape != y.shape:
        raise ValueError(f"mean_squared_error of shapes {tuple(x.shape)} and {tuple(y.shape)}")
    if x.dtype != y.dtype or not x.is_floating_point():
        return ((x - y) ** 2).mean()  # autograd's own type promotion
    if y.requires_grad:
        return _MeanSquaredError.apply(x, y)
    x, y = _memory_order(x, y)
    return _MeanSquaredError.apply(x, y)


@torch.no_grad()
def clamped_mse(render: torch.Tensor, target: torch.Tensor) -> float:
    """mean((clamp(render, 0, 1) − target)²), what a PSNR of the displayed image reads; no graph."""
    x, y = _memory_order(render.detach(), target)
    if x.dtype != y.dtype:
        return float(((x.clamp(0, 1) - y) ** 2).mean())
    d = x.clamp(0, 1).sub_(y).reshape(-1)
    return float(torch.dot(d, d)) / max(d.numel(), 1)


def squared_error_sum(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Σ (x − y)², differentiable in x: the ``l2`` loss times the number of values."""
    return mean_squared_error(x, y) * x.numel()


def pixel_sum_for(loss: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None:
    """The loss ``loss`` as a sum over values (its mean is the loss), for losses that are one (l2, l1), so that
    an image can be trained in bands of rows (:mod:`lgi_train.bands`); None for losses over windows."""
    if loss == "l2":
        return squared_error_sum
    if loss == "l1":
        return lambda x, y: (x - y).abs().sum()
    return None


def make_loss(cfg: FitConfig) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A function (render [C, H, W], target [C, H, W]) → scalar loss."""
    if cfg.loss == "l1":
        return lambda x, y: (x - y).abs().mean()
    if cfg.loss == "l2":
        return mean_squared_error
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
