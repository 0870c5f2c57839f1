"""Public SSIM functions: validate, pick a backend, and call the autograd Function or the reference."""

from __future__ import annotations

import torch

from lgi_fused_ssim import _backend
from lgi_fused_ssim._autograd import FusedSSIM, ReferenceNoTrain
from lgi_fused_ssim._reference import WINDOW, ssim_map_reference

PADDINGS = ("same", "valid")
BACKENDS = ("auto", "cpu", "cuda", "torch")


def _validate(img1: torch.Tensor, img2: torch.Tensor, padding: str, backend: str) -> None:
    if not isinstance(img1, torch.Tensor) or not isinstance(img2, torch.Tensor):
        raise ValueError(f"img1 and img2 must be torch.Tensors, got {type(img1).__name__} and "
                         f"{type(img2).__name__}")
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if img1.dim() != 4 or img2.dim() != 4:
        raise ValueError(f"img1 and img2 must be [B, C, H, W] (4 dimensions), got {tuple(img1.shape)} and "
                         f"{tuple(img2.shape)}")
    if img1.shape != img2.shape:
        raise ValueError(f"img1 and img2 must have the same shape, got {tuple(img1.shape)} and "
                         f"{tuple(img2.shape)}")
    for name, img in (("img1", img1), ("img2", img2)):
        if img.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"{name} must be float32 (or float64), got {img.dtype}")
    if img1.dtype != img2.dtype:
        raise ValueError(f"img1 and img2 must have the same dtype, got {img1.dtype} and {img2.dtype}")
    if img1.device != img2.device:
        raise ValueError(f"img1 and img2 must be on the same device, got {img1.device} and {img2.device}")
    b, c, h, w = img1.shape
    if b == 0 or c == 0:
        raise ValueError(f"empty batch or channel dimension: {tuple(img1.shape)}")
    if h < WINDOW or w < WINDOW:
        raise ValueError(f"images must be at least {WINDOW}x{WINDOW} (the Gaussian window), got {h}x{w}")
    if backend in ("cpu", "cuda"):
        if img1.device.type != backend:
            raise ValueError(f"backend={backend!r} needs {backend.upper()} tensors, got device {img1.device}")
        if img1.dtype != torch.float32:
            raise ValueError(f"backend={backend!r} needs float32 images, got {img1.dtype}; "
                             "use backend='torch' (or 'auto') for float64")


def _ssim(img1: torch.Tensor, img2: torch.Tensor, padding: str, train: bool, backend: str,
          reduce: bool) -> torch.Tensor:
    _validate(img1, img2, padding, backend)
    img1 = img1.contiguous()
    img2 = img2.detach().contiguous()
    ops = None
    if backend in ("cpu", "cuda"):
        ops = _backend.build(backend)
    elif backend == "auto" and img1.dtype == torch.float32 and img1.device.type in ("cpu", "cuda"):
        ops = _backend.auto_ops(img1.device.type)
    needs_grad = train and img1.requires_grad and torch.is_grad_enabled()
    if ops is not None:
        return FusedSSIM.apply(img1, img2, padding == "same", needs_grad, reduce, ops)
    if needs_grad:
        ssim_map = ssim_map_reference(img1, img2, padding)
        return ssim_map.mean() if reduce else ssim_map
    return ReferenceNoTrain.apply(img1, img2, padding, reduce)


def fused_ssim(img1: torch.Tensor, img2: torch.Tensor, padding: str = "same", train: bool = True,
               backend: str = "auto") -> torch.Tensor:
    """Mean SSIM of two image batches (11x11 Gaussian window, sigma 1.5, C1 = 0.01^2, C2 = 0.03^2).

    Args:
        img1: [B, C, H, W] float32 (float64 with the torch backend), H and W >= 11. The only
            differentiable input.
        img2: [B, C, H, W], same dtype and device as img1. Treated as a constant (detached).
        padding: "same": zero padding of 5 pixels, like ``conv2d(padding=5)`` (the original fused-ssim);
            "valid": no padding, only the (H - 10) x (W - 10) windows inside the image (equals
            ``pytorch_msssim.ssim(img1, img2, data_range=1)``).
        train: save what the backward pass needs (three partial-derivative maps plus the images). With
            False nothing is saved and a backward pass raises RuntimeError.
        backend: "auto" (CUDA tensors -> CUDA kernel, CPU float32 -> C++/OpenMP kernel, float64 or
            other devices -> the PyTorch reference; a kernel that fails to build gives one warning and
            the reference), or explicitly "cpu", "cuda", "torch".

    Returns:
        [] scalar tensor: the mean of the SSIM map over all images, channels and pixels.

    Raises:
        ValueError: wrong rank, shape mismatch, non-float or mismatched dtypes, mismatched devices,
            images smaller than 11x11, an unknown padding/backend, or a backend that cannot take them.
        lgi_fused_ssim.KernelUnavailableError: an explicit "cpu"/"cuda" kernel could not be built.
    """
    return _ssim(img1, img2, padding, train, backend, reduce=True)


def fused_ssim_map(img1: torch.Tensor, img2: torch.Tensor, padding: str = "same", train: bool = True,
                   backend: str = "auto") -> torch.Tensor:
    """Per-pixel SSIM map; same arguments and checks as :func:`fused_ssim`.

    Returns:
        [B, C, H, W] for "same", [B, C, H - 10, W - 10] for "valid".
    """
    return _ssim(img1, img2, padding, train, backend, reduce=False)
