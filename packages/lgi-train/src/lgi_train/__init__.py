"""Fitting 2D Gaussians to an image and compressing a fitted set."""

__version__ = "0.1.0"
