"""Fitting 2D Gaussians to an image (Image-GS style) and compressing a fitted set.

Importing this package is cheap; torch and the kernels load on first use of a name below.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

_EXPORTS = {
    "FitConfig": "lgi_train.config",
    "ConfigError": "lgi_train.config",
    "Fitter": "lgi_train.fit",
    "FitResult": "lgi_train.fit",
    "fit": "lgi_train.fit",
    "steps_for_budget": "lgi_train.fit",
    "GaussianModel": "lgi_train.model",
    "ste_quantize": "lgi_train.model",
    "fit_image": "lgi_train.runs",
    "load_target": "lgi_train.runs",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lgi_train' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
