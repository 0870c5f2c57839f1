"""Pure-PyTorch SSIM: the test oracle and the fallback where no native kernel is available.

Differentiable through torch autograd (with respect to both images, although the public functions
detach ``img2``). It works on any device and in float32 or float64. Memory is a fixed multiple of the
input (the five moment maps, about 12 images' worth with autograd), never more: the filter is
separable, so no 11x11 patch tensor is ever materialised.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

WINDOW = 11
RADIUS = WINDOW // 2
SIGMA = 1.5
C1 = 0.01**2
C2 = 0.03**2


def gaussian_window(dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> torch.Tensor:
    """The normalised 1D Gaussian window, computed in float64 then cast.

    Returns:
        [11] tensor, ``exp(-(k - 5)^2 / (2 * 1.5^2))`` divided by its sum.
    """
    g = torch.tensor([math.exp(-((k - RADIUS) ** 2) / (2 * SIGMA**2)) for k in range(WINDOW)],
                     dtype=torch.float64)
    return (g / g.sum()).to(dtype=dtype, device=device)


def _filter(x: torch.Tensor, same: bool) -> torch.Tensor:
    """Separable Gaussian filter of every channel. x: [B, K, H, W] -> [B, K, H', W']."""
    k = x.shape[1]
    g = gaussian_window(x.dtype, x.device)
    pad = RADIUS if same else 0
    x = F.conv2d(x, g.view(1, 1, 1, WINDOW).expand(k, 1, 1, WINDOW), padding=(0, pad), groups=k)
    return F.conv2d(x, g.view(1, 1, WINDOW, 1).expand(k, 1, WINDOW, 1), padding=(pad, 0), groups=k)


def ssim_map_reference(img1: torch.Tensor, img2: torch.Tensor, padding: str = "same") -> torch.Tensor:
    """Per-pixel SSIM.

    Args:
        img1: [B, C, H, W] float.
        img2: [B, C, H, W] float, same dtype and device.
        padding: "same" (zero padding of 5, output [B, C, H, W]) or "valid" (output
            [B, C, H - 10, W - 10]).

    Returns:
        [B, C, H', W'] SSIM map.
    """
    if padding not in ("same", "valid"):
        raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}")
    c = img1.shape[1]
    moments = _filter(torch.cat([img1, img2, img1 * img1, img2 * img2, img1 * img2], dim=1), padding == "same")
    mu1, mu2, sxx, syy, sxy = moments.split(c, dim=1)
    mu1_mu2 = mu1 * mu2
    sigma1_sq = sxx - mu1 * mu1
    sigma2_sq = syy - mu2 * mu2
    sigma12 = sxy - mu1_mu2
    num = (2 * mu1_mu2 + C1) * (2 * sigma12 + C2)
    den = (mu1 * mu1 + mu2 * mu2 + C1) * (sigma1_sq + sigma2_sq + C2)
    return num / den


def ssim_reference(img1: torch.Tensor, img2: torch.Tensor, padding: str = "same") -> torch.Tensor:
    """Mean SSIM over all pixels, channels and images: a scalar tensor."""
    return ssim_map_reference(img1, img2, padding).mean()
