"""Differentiable 2D Gaussian projection and tile rasterizer (CPU, CUDA, PyTorch reference)."""

__version__ = "0.1.0"
