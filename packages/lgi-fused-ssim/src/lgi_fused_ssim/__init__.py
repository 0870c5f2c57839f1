"""Fused SSIM forward and backward (CPU, CUDA, PyTorch reference)."""

__version__ = "0.1.0"
