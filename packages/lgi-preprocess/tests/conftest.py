"""Small synthetic images (≤ 128 px) shared by the lgi-preprocess tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def scene(h: int = 64, w: int = 96, seed: int = 0) -> np.ndarray:
    """float32 [h, w, 3] in [0, 1]: a smooth gradient left, noisy texture right, a red square in the middle."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.float32)
    img[:, :, :] = np.linspace(0.2, 0.6, w, dtype=np.float32)[None, :, None]
    img[:, w // 2:, :] = rng.random((h, w - w // 2, 1), dtype=np.float32)
    img[h // 4:h // 2, w // 4:w // 2] = (0.9, 0.1, 0.1)
    return img


@pytest.fixture
def rgb() -> np.ndarray:
    return scene()


@pytest.fixture
def image_file(tmp_path: Path) -> Path:
    path = tmp_path / "in" / "scene.png"
    path.parent.mkdir()
    Image.fromarray(np.round(scene() * 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture
def make_scene():
    """The :func:`scene` factory (test modules cannot import conftest under --import-mode=importlib)."""
    return scene


def write_bad_image(path: Path, kind: str) -> Path:
    """Makes ``path`` a bad image file of ``kind``: "missing" (nothing), "empty" (0 bytes), "text", "truncated"
    (a PNG cut after 600 bytes) or "directory"."""
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not an image\n")
    elif kind == "truncated":
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
        path.write_bytes(path.read_bytes()[:600])
    elif kind == "directory":
        path.mkdir()
    elif kind != "missing":
        raise ValueError(f"unknown bad-image kind {kind!r}")
    return path


@pytest.fixture
def bad_image():
    """The :func:`write_bad_image` factory."""
    return write_bad_image
