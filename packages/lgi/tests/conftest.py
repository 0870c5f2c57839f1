"""Shared test images and the browser of the lgi package's tests."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

#: The system's Chromium, driven by Playwright (browser downloads cannot reach their servers here).
CHROMIUM = os.environ.get("LGI_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium through Playwright, for the app's and lgi.js's browser tests; skipped, with the
    reason, where Playwright or Chromium is missing (`.ci/run` installs Chromium)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
    if CHROMIUM is None:
        pytest.skip("no Chromium on PATH (Debian: apt-get install chromium; or set LGI_CHROMIUM to its path)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def picture(h: int = 48, w: int = 80, seed: int = 0) -> np.ndarray:
    """(h, w, 3) float in [0, 1]: smooth ramps, a bright block, a little noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([xx, yy, 0.5 + 0.4 * np.sin(9 * xx) * np.cos(7 * yy)], axis=2)
    img[h // 4: h // 2, w // 5: w // 2] = (0.9, 0.2, 0.1)
    return np.clip(img + rng.normal(0, 0.01, img.shape), 0, 1)


def as_u8(x: np.ndarray) -> np.ndarray:
    return np.rint(x * 255).astype(np.uint8)


@pytest.fixture(scope="session")
def pictures():
    """The helpers above, for test modules (which cannot import each other under importlib mode)."""
    return picture, as_u8


@pytest.fixture
def pixel_decodes(monkeypatch):
    """Every image whose pixels Pillow decodes during the test (a refusal from the header makes none)."""
    from PIL import ImageFile

    decoded = []
    load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda im: decoded.append(im) or load(im))
    return decoded
