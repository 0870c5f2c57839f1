"""Content maps, placement map and SLIC Gaussian initialization for LGI.

Importing the package loads nothing heavy: every name below is resolved on first use (PEP 562), and
OpenCV, scikit-image, mahotas and torch are imported only inside the functions that need them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "PreprocessError": "lgi_preprocess.errors",
    "ImageTooLarge": "lgi_preprocess.errors",
    "load_image": "lgi_preprocess._io",
    "decode_image": "lgi_preprocess._io",
    "as_rgb_float": "lgi_preprocess._io",
    "DEFAULT_BACKGROUND": "lgi_preprocess._io",
    "entropy_map": "lgi_preprocess.maps",
    "gradient_map": "lgi_preprocess.maps",
    "texture_map": "lgi_preprocess.maps",
    "saliency_map": "lgi_preprocess.maps",
    "slic_segments": "lgi_preprocess.maps",
    "distance_map": "lgi_preprocess.maps",
    "skeleton_map": "lgi_preprocess.maps",
    "placement_map": "lgi_preprocess.maps",
    "to_gray": "lgi_preprocess.maps",
    "MAP_NAMES": "lgi_preprocess.maps",
    "DEFAULT_WEIGHTS": "lgi_preprocess.maps",
    "SlicGaussians": "lgi_preprocess.gaussians",
    "generate_slic_gaussians": "lgi_preprocess.gaussians",
    "sample_positions": "lgi_preprocess.gaussians",
    "ImagePreprocessor": "lgi_preprocess.pipeline",
    "PreprocessConfig": "lgi_preprocess.pipeline",
    "PreprocessResult": "lgi_preprocess.pipeline",
    "RunResult": "lgi_preprocess.pipeline",
    "MODES": "lgi_preprocess.pipeline",
    "make_montage": "lgi_preprocess.montage",
}

__all__ = [  # grouped by module, as _EXPORTS
    "__version__", "PreprocessError", "ImageTooLarge", "load_image", "decode_image", "as_rgb_float", "DEFAULT_BACKGROUND", "entropy_map",
    "gradient_map", "texture_map", "saliency_map", "slic_segments", "distance_map", "skeleton_map",
    "placement_map", "to_gray", "MAP_NAMES", "DEFAULT_WEIGHTS", "SlicGaussians", "generate_slic_gaussians",
    "sample_positions", "ImagePreprocessor", "PreprocessConfig", "PreprocessResult", "RunResult", "MODES",
    "make_montage",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from lgi_preprocess._io import DEFAULT_BACKGROUND, as_rgb_float, decode_image, load_image
    from lgi_preprocess.errors import ImageTooLarge, PreprocessError
    from lgi_preprocess.gaussians import SlicGaussians, generate_slic_gaussians, sample_positions
    from lgi_preprocess.maps import (
        DEFAULT_WEIGHTS,
        MAP_NAMES,
        distance_map,
        entropy_map,
        gradient_map,
        placement_map,
        saliency_map,
        skeleton_map,
        slic_segments,
        texture_map,
        to_gray,
    )
    from lgi_preprocess.montage import make_montage
    from lgi_preprocess.pipeline import (
        MODES,
        ImagePreprocessor,
        PreprocessConfig,
        PreprocessResult,
        RunResult,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lgi_preprocess' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
