"""Fused SSIM forward and backward (CPU, CUDA, PyTorch reference).

``fused_ssim(img1, img2, padding="same", train=True, backend="auto")`` returns the mean SSIM and
``fused_ssim_map`` the per-pixel map. Importing compiles nothing; the first call builds the kernel.
"""

__version__ = "0.1.0"

from lgi_fused_ssim._backend import KernelUnavailableError, kernel_status
from lgi_fused_ssim._reference import ssim_map_reference, ssim_reference
from lgi_fused_ssim.functional import fused_ssim, fused_ssim_map

__all__ = [
    "KernelUnavailableError",
    "__version__",
    "fused_ssim",
    "fused_ssim_map",
    "kernel_status",
    "ssim_map_reference",
    "ssim_reference",
]
