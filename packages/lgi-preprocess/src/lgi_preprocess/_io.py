"""Image loading, array normalization, checksums and atomic file writes.

Every public map takes what :func:`load_image` returns (float32 ``[H, W, 3]`` in ``[0, 1]``) or a uint8
array; :func:`as_rgb_float` is the single place where arrays of other kinds are converted, so no map can
scale an already-scaled image twice (the ``×255`` bug of the original ``preprocess_image.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from lgi_preprocess.errors import ImageTooLarge, PreprocessError

#: Transparent pixels are composited over this colour (RGB in [0, 1]): white, as image viewers show them.
DEFAULT_BACKGROUND: tuple[float, float, float] = (1.0, 1.0, 1.0)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PIL_16BIT_GRAY = ("I;16", "I;16L", "I;16B", "I;16N")


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def read_image_bytes(path: str | os.PathLike) -> bytes:
    """Read a file for decoding, turning the usual mistakes into one-line :class:`PreprocessError`."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise PreprocessError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise PreprocessError(f"{p}: is a directory, not an image") from None
    except PermissionError:
        raise PreprocessError(f"{p}: permission denied") from None
    except OSError as exc:
        raise PreprocessError(f"{p}: cannot read ({exc.strerror or exc})") from None
    if not data:
        raise PreprocessError(f"{p}: empty file (0 bytes), not an image")
    return data


def load_image(source: Any, *, background: tuple[float, float, float] = DEFAULT_BACKGROUND,
               max_pixels: int | None = None) -> np.ndarray:
    """Load an image as RGB float32 in ``[0, 1]``.

    Handles Pillow modes ``RGB``, ``RGBA``/``LA``/``PA``/``RGBa`` (alpha composited over ``background``),
    ``L``, ``1``, ``P`` (palette, with or without transparency), ``I;16*`` and ``I`` (16-bit: divided by
    65535), ``F`` (taken as already in [0, 1] and clipped), ``CMYK``/``YCbCr``/``LAB``/``HSV`` (converted by
    Pillow), and 16-bit-per-channel RGB/RGBA PNG files, which Pillow would truncate to 8 bits and which are
    therefore decoded with OpenCV at full depth. EXIF orientation is applied; for animations the first
    frame is used.

    The pixel limit is ``max_pixels`` when given (a command's limit, ``--max-pixels``: what it can process
    within its memory budget, see :mod:`lgi_preprocess.limits`), else Pillow's decompression-bomb guard:
    images with more than ``PIL.Image.MAX_IMAGE_PIXELS`` pixels (89,478,485 by default; set that attribute
    to change it) are refused. Either way the size is checked from the header, before any pixel is decoded.

    Args:
        source: a path (``str`` / ``os.PathLike``) or a ``PIL.Image.Image``.
        background: RGB in [0, 1] under transparent pixels.
        max_pixels: refuse images of more pixels than this (None: Pillow's guard).

    Returns:
        ``[H, W, 3]`` float32 in [0, 1].

    Raises:
        PreprocessError: missing, empty, unreadable, non-image, truncated or oversized input.
    """
    from PIL import Image

    if isinstance(source, Image.Image):
        _check_pixels(source.size, "<PIL image>", max_pixels)
        try:
            source.load()
        except Exception as exc:  # noqa: BLE001 - a lazily opened image can still be truncated
            raise PreprocessError(f"<PIL image>: truncated or corrupt image ({exc})") from None
        return _from_pil(source, "<PIL image>", background)
    if not isinstance(source, (str, os.PathLike)):
        raise PreprocessError(f"load_image takes a path or a PIL image, not {type(source).__name__}")
    return decode_image(read_image_bytes(source), str(source), background=background, max_pixels=max_pixels)


_PIL_GUARD = threading.Lock()


def decode_image(data: bytes, name: str, *, background: tuple[float, float, float] = DEFAULT_BACKGROUND,
                 max_pixels: int | None = None) -> np.ndarray:
    """Decode encoded image bytes (see :func:`load_image`); ``name`` is used in error messages."""
    from PIL import Image, UnidentifiedImageError

    with warnings.catch_warnings():
        # Pillow only warns between 1x and 2x its limit; we refuse from 1x (see _check_pixels).
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            if max_pixels is None:
                img = Image.open(io.BytesIO(data))
            else:  # the command's limit replaces Pillow's guard (checked below, from the header)
                with _PIL_GUARD:
                    guard, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
                    try:
                        img = Image.open(io.BytesIO(data))
                    finally:
                        Image.MAX_IMAGE_PIXELS = guard
        except Image.DecompressionBombError as exc:
            raise PreprocessError(f"{name}: refused, too many pixels ({exc})") from None
        except UnidentifiedImageError:
            raise PreprocessError(f"{name}: not an image (no decoder recognizes its format)") from None
        except Exception as exc:  # noqa: BLE001 - every decoder failure is the file's fault
            raise PreprocessError(f"{name}: corrupt image ({type(exc).__name__}: {exc})") from None
        _check_pixels(img.size, name, max_pixels)
        try:
            img.load()
        except Exception as exc:  # noqa: BLE001 - truncated data, broken streams, bad chunk CRCs
            raise PreprocessError(f"{name}: truncated or corrupt image ({exc})") from None
    if img.format == "PNG" and _png_is_16bit_color(data):
        return _decode_png16_color(data, name, background)
    return _from_pil(img, name, background)


def _check_pixels(size: tuple[int, int], name: str, max_pixels: int | None = None) -> None:
    from PIL import Image

    w, h = size
    if w <= 0 or h <= 0:
        raise PreprocessError(f"{name}: image has no pixels ({w}x{h})")
    if max_pixels is not None:
        if w * h > max_pixels:
            raise ImageTooLarge(f"{name}: refused, {w}x{h} = {w * h} pixels is more than the limit of "
                                f"{max_pixels} (--max-pixels raises it, if the memory is there)", w, h, max_pixels)
        return
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and w * h > limit:
        raise PreprocessError(f"{name}: refused, {w}x{h} = {w * h} pixels exceeds the limit of {limit} "
                              "(PIL.Image.MAX_IMAGE_PIXELS, Pillow's decompression-bomb guard)")


def _png_is_16bit_color(data: bytes) -> bool:
    # IHDR is always the first chunk: bit depth at byte 24, colour type at byte 25 (2 = RGB, 6 = RGBA).
    return data[:8] == _PNG_SIGNATURE and len(data) > 25 and data[24] == 16 and data[25] in (2, 6)


def _decode_png16_color(data: bytes, name: str, background: tuple[float, float, float]) -> np.ndarray:
    import cv2

    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.ndim != 3 or arr.dtype != np.uint16:
        raise PreprocessError(f"{name}: corrupt 16-bit PNG (OpenCV cannot decode it)")
    code = cv2.COLOR_BGRA2RGBA if arr.shape[2] == 4 else cv2.COLOR_BGR2RGB
    rgb = cv2.cvtColor(arr, code).astype(np.float32) / np.float32(65535)
    return _composite(rgb, background)


def _from_pil(img: Any, name: str, background: tuple[float, float, float]) -> np.ndarray:
    from PIL import ImageOps

    try:
        img = ImageOps.exif_transpose(img)
    except Exception as exc:  # noqa: BLE001 - a broken EXIF block is a broken file
        raise PreprocessError(f"{name}: corrupt EXIF data ({exc})") from None
    mode = img.mode
    if mode in _PIL_16BIT_GRAY:
        gray = np.asarray(img).astype(np.float32) / np.float32(65535)
    elif mode == "I":
        # 32-bit integer images are what Pillow makes of 16-bit grayscale in some formats.
        gray = np.clip(np.asarray(img).astype(np.float64), 0, 65535).astype(np.float32) / np.float32(65535)
    elif mode == "F":
        gray = np.clip(np.nan_to_num(np.asarray(img, dtype=np.float32)), 0.0, 1.0)
    else:
        transparent = mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in img.info
        img = img.convert("RGBA" if transparent else "RGB")
        return _composite(np.asarray(img, dtype=np.float32) / np.float32(255), background)
    return np.repeat(gray[:, :, None], 3, axis=2)


def _composite(rgb_or_rgba: np.ndarray, background: tuple[float, float, float]) -> np.ndarray:
    if rgb_or_rgba.shape[2] == 3:
        return np.ascontiguousarray(rgb_or_rgba, dtype=np.float32)
    bg = np.asarray(background, dtype=np.float32).reshape(1, 1, 3)
    if bg.size != 3 or not np.all((bg >= 0) & (bg <= 1)):
        raise PreprocessError(f"background must be 3 values in [0, 1], got {background!r}")
    alpha = rgb_or_rgba[:, :, 3:4]
    out = rgb_or_rgba[:, :, :3] * alpha + bg * (1.0 - alpha)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def as_rgb_float(image: Any, *, background: tuple[float, float, float] = DEFAULT_BACKGROUND) -> np.ndarray:
    """Bring an array (or PIL image) to RGB float32 ``[H, W, 3]`` in ``[0, 1]``.

    Accepts ``[H, W]``, ``[H, W, 1]``, ``[H, W, 3]`` or ``[H, W, 4]`` (alpha composited over ``background``)
    of dtype uint8 (divided by 255), uint16 (divided by 65535), bool, or float (must already lie in
    [0, 1]: a float image in [0, 255] is refused rather than silently rescaled).
    """
    from PIL import Image

    if isinstance(image, Image.Image):
        return load_image(image, background=background)
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise PreprocessError(f"expected an image array [H, W], [H, W, 3] or [H, W, 4], got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise PreprocessError(f"image has no pixels (shape {arr.shape})")
    if arr.dtype == np.uint8:
        out = arr.astype(np.float32) / np.float32(255)
    elif arr.dtype == np.uint16:
        out = arr.astype(np.float32) / np.float32(65535)
    elif arr.dtype == np.bool_:
        out = arr.astype(np.float32)
    elif np.issubdtype(arr.dtype, np.floating):
        out = arr.astype(np.float32)
        if not np.all(np.isfinite(out)):
            raise PreprocessError("float image contains NaN or infinity")
        lo, hi = float(out.min()), float(out.max())
        if lo < -1e-6 or hi > 1.0 + 1e-6:
            raise PreprocessError(f"float images must lie in [0, 1], got values in [{lo:g}, {hi:g}] "
                                  "(pass uint8 for 0..255 data)")
        out = np.clip(out, 0.0, 1.0)
    else:
        raise PreprocessError(f"unsupported image dtype {arr.dtype} (use uint8, uint16 or float in [0, 1])")
    if out.ndim == 2:
        return np.repeat(out[:, :, None], 3, axis=2)
    return _composite(out, background)


# ----------------------------------------------------------------------------------------- atomic writes

_UMASK: int | None = None


def _file_mode() -> int:
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0o022)
        os.umask(_UMASK)
    return 0o666 & ~_UMASK


#: A temporary ``.NAME.*.tmp`` beside an output older than this was left by a writer that was killed.
STALE_SECONDS = 3600


def _sweep_stale(path: Path) -> None:
    # The same rule as lgi_dictco.fileio (the two leaves share no code): a kill (SIGKILL, a timeout,
    # power loss) skips every cleanup, so what it left is removed by the next write of the same file.
    now = time.time()
    with contextlib.suppress(OSError):
        for tmp in path.parent.glob(f".{path.name}.*.tmp"):
            with contextlib.suppress(OSError):
                if tmp.is_file() and now - tmp.stat().st_mtime > STALE_SECONDS:
                    tmp.unlink()


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Write a file through a temporary file in the same folder, then ``os.replace`` it into place.

    A reader (or a later ``skip`` run) sees either the old file or the complete new one, never a partial
    file; on any error the temporary file is removed and the old file, if any, is left untouched.
    Temporaries of the same file older than :data:`STALE_SECONDS` (a killed writer's) are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_stale(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def save_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Atomically write ``array`` as ``.npy`` (no pickles)."""
    return atomic_write(path, lambda f: np.save(f, np.asarray(array), allow_pickle=False))


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write UTF-8 text."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))
