"""Files: atomic writes, images in and out, listing an image folder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lgi_dictco.fileio import atomic_open

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm")


#: Entry-point group through which lgi-preprocess provides the one LGI image loader.
IMAGE_LOADERS = "lgi.image_loaders"


def load_image(path: str | os.PathLike, max_pixels: int | None = None) -> Tensor:
    """Read an image as RGB floats in [0, 1]: [1, 3, H, W].

    The reading is done by the one LGI image loader, ``lgi_preprocess.load_image``, so ``lgi dictco``
    sees an image exactly as ``lgi encode`` and ``lgi fit`` do: EXIF orientation applied, alpha
    composited on white, 16-bit data at full depth, palette, CMYK and grayscale converted, and images
    above ``max_pixels`` (None: Pillow's pixel limit, ``PIL.Image.MAX_IMAGE_PIXELS``) refused in one line,
    from the header. lgi-dictco is a
    leaf and never imports lgi-preprocess: the loader is found through the entry-point group
    ``lgi.image_loaders`` (install ``lgi-dictco[images]``). Decoding never needs it.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not an image that can be read, it is too large, or no loader is installed.
    """
    from importlib.metadata import entry_points

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    found = [ep for ep in entry_points(group=IMAGE_LOADERS) if ep.name == "rgb"]
    if not found:
        raise ValueError(
            f"cannot read {path}: reading images needs the LGI image loader of lgi-preprocess "
            "(pip install 'lgi-dictco[images]')"
        )
    try:
        rgb = found[0].load()(path, max_pixels=max_pixels)
    except ValueError as exc:  # lgi-preprocess's PreprocessError: one line naming the file
        raise ValueError(f"cannot read image {exc}") from None
    return torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1).unsqueeze(0)


def to_uint8(image: Tensor) -> np.ndarray:
    """[1, 3, H, W] or [3, H, W] floats in [0, 1] -> [H, W, 3] uint8 (rounded)."""
    from lgi_dictco.pixels import to_uint8 as convert

    return convert(image[0] if image.dim() == 4 else image)


def save_image(image: Tensor, path: str | os.PathLike, *, force: bool = False) -> None:
    """Write [1, 3, H, W] or [3, H, W] floats in [0, 1] as an 8-bit image, atomically.

    The format follows the suffix (PNG when there is none); ``force`` replaces a read-only file.
    """
    from PIL import Image

    path = Path(path)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG"}.get(path.suffix.lower(), path.suffix.lstrip(".").upper() or "PNG")
    with atomic_open(path, force=force) as f:
        Image.fromarray(to_uint8(image)).save(f, format=fmt)


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files under ``folder`` (recursively, sorted).

    Raises:
        FileNotFoundError: the folder does not exist.
        ValueError: it holds no image.
    """
    folder = Path(folder)
    if folder.is_file() and folder.suffix.lower() in IMAGE_SUFFIXES:
        return [folder]
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
    return files
