"""LGI's Python API: encode an image to ``.lgi`` bytes, decode them back at any size, read a file's header.

    import lgi

    data = lgi.encode("photo.png", bpp=0.5)           # a path, a PIL image or an (H, W[, C]) array
    pixels = lgi.decode(data)                         # (H, W, C) uint8 numpy array, C = 3 or 1
    big = lgi.decode(data, scale=2)                   # any size: the Gaussians are drawn again
    print(lgi.info(data).gaussians)

The command line (``lgi encode`` / ``decode`` / ``info``), ``lgi batch``, ``lgi app`` and ``lgi demo``
are layers over these functions. Errors are the typed exceptions of :mod:`lgi.errors`. Decoding needs
no torch on a CPU (the native renderer draws it); encoding fits Gaussians with torch.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lgi.errors import (
    FileFormatError,
    ImageInputError,
    LimitError,
    OptionError,
    RateTargetError,
    RendererError,
)

__all__ = ["ENCODE_MAX_PIXELS", "ENCODE_STAGES", "EFFORTS", "QUALITIES", "SAMPLE", "Encoded", "Info", "decode",
           "encode", "encode_details", "info"]

#: The built-in sample image (Kodak kodim23, 768x512), what ``lgi demo`` encodes.
SAMPLE = Path(__file__).with_name("data") / "sample.png"

#: The largest image :func:`encode` takes by default (``max_pixels``): the encoder's peak memory grows
#: by about 200 bytes a pixel over ~1 GB, so 2^25 pixels (33.5 MP) stay within 8 GB
#: (benchmarks/bench_memory.py; docs/reliability.md). Larger images are refused from their header.
ENCODE_MAX_PIXELS = 1 << 25
#: ``quality`` presets and their bits per pixel (``lgi_train.encode.QUALITY_BPP``, checked equal by a test).
QUALITIES = {"low": 0.25, "medium": 0.5, "high": 1.0, "max": 1.5}
EFFORTS = ("fast", "default", "max")
#: The encoder's stages (``lgi_train.encode.STAGES``) and their shares of a default encode's time (medians
#: over the 24 Kodak images at 0.5 bpp, benchmarks/results/encoder_kodak.csv): the progress bar's weights.
ENCODE_STAGES = (("initialise", 0.5), ("fit", 57.5), ("select", 11.0), ("quantize", 0.2), ("finetune", 30.5),
                 ("entropy-code", 0.3), ("done", 0.0))

Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class Encoded:
    """An encode's file and what it measured (:func:`encode_details`).

    Attributes:
        data: the ``.lgi`` bytes.
        width, height, channels: the image (channels 1: a gray image, coded as one channel).
        gaussians: Gaussians in the file.
        psnr: of the decoded image against the input, in dB (8-bit, as a decoder shows it).
        seconds: the encode's wall time; stage_seconds: per stage.
        target_bytes: the byte budget it was held to (None: a fixed ``gaussians`` count).
    """

    data: bytes
    width: int
    height: int
    channels: int
    gaussians: int
    psnr: float
    seconds: float
    stage_seconds: dict[str, float] = field(default_factory=dict)
    target_bytes: int | None = None

    @property
    def bpp(self) -> float:
        return len(self.data) * 8 / (self.width * self.height)

    def report(self) -> dict[str, Any]:
        """What ``lgi encode --json`` prints, less the file names."""
        return {"width": self.width, "height": self.height, "bytes": len(self.data), "bpp": self.bpp,
                "target_bytes": self.target_bytes, "psnr": self.psnr, "gaussians": self.gaussians,
                "seconds": round(self.seconds, 3),
                "stage_seconds": {k: round(v, 3) for k, v in self.stage_seconds.items()}}


@dataclass(frozen=True)
class Info:
    """A ``.lgi`` file's header and sizes (:func:`info`); ``details`` is what ``lgi info --json`` shows."""

    width: int
    height: int
    channels: int
    gaussians: int
    bytes: int
    bpp: float
    render_mode: str
    details: dict[str, Any]


def encode(image: Any, *, bpp: float | None = None, size: int | None = None, quality: str | None = None,
           gaussians: int | None = None, effort: str = "default", device: str = "cpu", seed: int = 0,
           max_pixels: int = ENCODE_MAX_PIXELS, progress: bool | Progress | None = None) -> bytes:
    """Encode an image into ``.lgi`` bytes at or under the size asked for.

    Args:
        image: a path, a ``PIL.Image.Image`` or an array: (H, W) or (H, W, 1) gray, (H, W, 3) RGB,
            (H, W, 4) RGBA, of uint8, uint16, bool or float in [0, 1]; or a torch tensor [C, H, W] in
            [0, 1]. All go through the one image loader of ``lgi encode`` (``lgi_preprocess``): alpha is
            composited over white, 16-bit and palettes are kept at their depth. A gray image (one channel,
            or three equal ones) is coded as one channel.
        bpp: bits per pixel (the file lands at or under it). At most one of ``bpp``, ``size`` (bytes),
            ``quality`` (``"low"`` 0.25, ``"medium"`` 0.5, ``"high"`` 1.0, ``"max"`` 1.5 bpp) and
            ``gaussians`` (a fixed count, no rate control); none: 0.5 bpp.
        effort: ``"fast"``, ``"default"`` or ``"max"`` (a 768x512 image on 2 CPU cores: about 6 s, 14 s,
            1-2 min).
        device: ``"cpu"`` or ``"cuda[:N]"``; seed: the same seed and input give the same bytes on a machine.
        max_pixels: refuse larger images, from their header (the default keeps the encoder within 8 GB).
        progress: True for a progress bar on stderr, or a callable ``(stage, fraction)``.

    Returns:
        The ``.lgi`` file's bytes.

    Raises:
        ImageInputError, OptionError, LimitError, RateTargetError (all :class:`lgi.LgiError`).

    Example:
        >>> import numpy as np, lgi
        >>> gradient = np.linspace(0, 1, 48 * 64).reshape(48, 64)
        >>> data = lgi.encode(gradient, size=800, effort="fast")
        >>> len(data) <= 800 and lgi.decode(data).shape
        (48, 64, 1)
    """
    return encode_details(image, bpp=bpp, size=size, quality=quality, gaussians=gaussians, effort=effort,
                          device=device, seed=seed, max_pixels=max_pixels, progress=progress).data


def encode_details(image: Any, *, bpp: float | None = None, size: int | None = None, quality: str | None = None,
                   gaussians: int | None = None, effort: str = "default", device: str = "cpu", seed: int = 0,
                   max_pixels: int = ENCODE_MAX_PIXELS, progress: bool | Progress | None = None,
                   tuning: Any = None, backend: str = "auto") -> Encoded:
    """:func:`encode`, returning the file with what the encode measured (:class:`Encoded`).

    ``tuning`` (an ``lgi_train.encode.Tuning``) replaces the effort's tuned numbers and ``backend`` picks
    the rasterizer's kernels (``"auto"``, ``"cpu"``, ``"cuda"``, ``"torch"``): for benchmarks and research.
    """
    bpp = rate_request(bpp, size, quality, gaussians)
    if effort not in EFFORTS:
        raise OptionError(f"`effort` must be one of {', '.join(EFFORTS)}, got {effort!r}", "effort")
    _check_count("max_pixels", max_pixels)
    if not (progress in (None, True, False) or callable(progress)):
        raise OptionError("`progress` is True, False, None or a callable (stage, fraction)", "progress")
    _check_device(device)
    target = _target(image, max_pixels)

    from lgi_train.encode import Options, RateError
    from lgi_train.encode import encode as run
    from lgi_train.fit import is_grayscale
    from lgi_train.metrics import psnr, quantize_8bit

    if target.shape[0] == 3 and is_grayscale(target):
        # A gray image is coded as one channel (decoded to a gray image): no bits go to colour that is not
        # there (a 128x96 crop at 1 bpp: 25.69 dB against 24.41 as RGB).
        target = target[:1].contiguous()
    _, h, w = target.shape
    try:
        options = Options(bpp=bpp, size=size, gaussians=gaussians, effort=effort, device=device, seed=seed,
                          backend=backend, tuning=tuning)
        budget = options.budget(h, w)
        with _progress_display(progress) as on_stage:
            result = run(target, options, on_stage)
    except RateError as exc:
        raise RateTargetError(str(exc)) from None
    return Encoded(data=result.data, width=w, height=h, channels=target.shape[0], gaussians=result.num_gaussians,
                   psnr=psnr(quantize_8bit(result.image.cpu()), target.cpu()), seconds=result.seconds,
                   stage_seconds=dict(result.stage_seconds), target_bytes=budget)


def decode(data: Any, *, scale: float | None = None, width: int | None = None, max_pixels: int | None = None,
           max_gaussians: int | None = None, max_work: int | None = None, device: str = "cpu",
           backend: str = "auto") -> Any:
    """Decode ``.lgi`` data into an image, at its stored size or any other.

    Args:
        data: the file's bytes (or a bytearray / memoryview), or a path to it.
        scale: output size relative to the stored size (2.0: twice as wide and high); or ``width``: the
            output width in pixels, the height keeping the aspect ratio.
        max_pixels, max_gaussians, max_work: the decode budget, which protects a decoder of files it did
            not make: the most output pixels (default 2^28); the most Gaussians, read from the header
            before any stream is decoded (default 0.125 per pixel of the larger of the stored and output
            sizes, at least 65,536); the most work, Gaussian-tile intersections bounded before rendering,
            times 4 for top-K (default 1536 per 16x16 output tile + 16 per Gaussian). The defaults
            follow the encoder's own files with headroom (docs/reliability.md).
        device, backend: where it renders; on the CPU the torch-free native renderer draws it where it
            loads (``backend="auto"``), else torch's kernels.

    Returns:
        numpy uint8 array (H, W, C): C = 3 for a colour file, 1 for a gray one.

    Raises:
        FileFormatError (bad data), LimitError (beyond ``max_pixels`` / ``max_gaussians`` / ``max_work``),
        OptionError,
        RendererError; OSError for a path that cannot be read.

    Example:
        >>> import numpy as np, lgi
        >>> data = lgi.encode(np.ones((32, 48, 3)) * (0.2, 0.5, 0.8), gaussians=8, effort="fast")
        >>> lgi.decode(data, scale=2).shape
        (64, 96, 3)
    """
    from lgi import decoding

    plan = _prepare(_bytes(data), scale=scale, width=width, max_pixels=max_pixels, max_gaussians=max_gaussians,
                    max_work=max_work)
    try:
        return decoding.render_uint8(plan, device, backend)
    except decoding.DecodeError as exc:
        raise _api_error(exc) from None


def info(data: Any) -> Info:
    """The header and stream sizes of ``.lgi`` data (bytes or a path), without rendering it.

    Raises:
        FileFormatError: bad data. OSError: a path that cannot be read.
    """
    from lgi.decoding import info_report
    from lgi_dictco import LgiFormatError

    data = _bytes(data)
    try:
        r = info_report(data)
    except LgiFormatError as exc:
        raise FileFormatError(str(exc)) from None
    return Info(width=r["width"], height=r["height"], channels=r["channels"], gaussians=r["gaussians"],
                bytes=r["bytes"], bpp=r["bpp"], render_mode=r["render_mode"], details=r)


# --- the pieces ------------------------------------------------------------------------------------

def rate_request(bpp, size, quality, gaussians) -> float | None:
    """The size arguments checked; returns the bits per pixel asked for (a ``quality`` preset's, or None)."""
    chosen = [name for name, v in (("bpp", bpp), ("size", size), ("quality", quality), ("gaussians", gaussians))
              if v is not None]
    if len(chosen) > 1:
        raise OptionError("choose one of `bpp`, `size`, `quality`, `gaussians` (got "
                          + " and ".join(f"`{name}`" for name in chosen) + ")", chosen[1])
    if quality is not None:
        if quality not in QUALITIES:
            raise OptionError(f"`quality` must be one of {', '.join(QUALITIES)}, got {quality!r}", "quality")
        bpp = QUALITIES[quality]
    if bpp is not None and (isinstance(bpp, bool) or not isinstance(bpp, (int, float)) or not 0 < bpp <= 24):
        raise OptionError(f"`bpp` must be a number in (0, 24], got {bpp!r}", "bpp")
    for name, v in (("size", size), ("gaussians", gaussians)):
        if v is not None:
            _check_count(name, v)
    return None if bpp is None else float(bpp)


def _check_count(name: str, v: Any) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise OptionError(f"`{name}` must be a whole number >= 1, got {v!r}", name)


def _check_device(device: str) -> None:
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise OptionError(f"`device` {device!r} is not a device (cpu, cuda, cuda:N)", "device") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise OptionError(f"`device` {device!r}: no CUDA GPU is available on this machine", "device")
    if dev.type not in ("cpu", "cuda"):
        raise OptionError(f"`device` {device!r}: LGI runs on cpu or cuda", "device")


def _target(image: Any, max_pixels: int):
    """Any accepted image → [3, H, W] float32 torch tensor in [0, 1] (see :func:`encode`), through the one
    image loader of LGI (``lgi_preprocess.load_image`` for paths and PIL images, ``as_rgb_float`` for
    arrays: EXIF, alpha over white, 16-bit, palettes and dtypes handled there, once)."""
    import numpy as np
    import torch
    from PIL import Image

    from lgi_preprocess import ImageTooLarge, PreprocessError, as_rgb_float, load_image

    if isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] not in (1, 3) or not image.is_floating_point():
            raise ImageInputError(f"a tensor image must be [C, H, W] float with C = 1 or 3, got "
                                  f"{list(image.shape)} {image.dtype}")
        image = image.detach().cpu().permute(1, 2, 0).numpy()
    elif not isinstance(image, (str, os.PathLike, Image.Image, np.ndarray)):
        raise ImageInputError(f"an image is a path, a PIL image or an array, not {type(image).__name__}")
    try:
        if isinstance(image, np.ndarray):
            if image.ndim >= 2 and image.shape[0] * image.shape[1] > max_pixels:
                raise ImageTooLarge("", image.shape[1], image.shape[0], max_pixels)
            rgb = as_rgb_float(image)
        else:
            rgb = load_image(image, max_pixels=max_pixels)  # refused from the header above max_pixels
    except ImageTooLarge as exc:
        raise LimitError(f"the image is {exc.width}x{exc.height} = {exc.width * exc.height} pixels, more than the "
                         f"limit of {exc.limit} (`max_pixels` raises it, if the memory is there)", "max_pixels") from None
    except PreprocessError as exc:
        raise ImageInputError(str(exc)) from None
    return torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1).contiguous()


@contextlib.contextmanager
def _progress_display(progress):
    """The encoder's ``on_stage`` callback for ``progress`` (see :func:`encode`): a bar on stderr for True."""
    if progress is True:
        from lgi_dictco.progress import StageProgress

        with StageProgress("lgi.encode", ENCODE_STAGES) as bar:
            yield bar.update
    else:
        yield progress or None


def _bytes(data: Any) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, (str, os.PathLike)):
        with open(data, "rb") as f:
            return f.read()
    raise OptionError(f"`data` is the .lgi file's bytes or a path to it, not {type(data).__name__}", "data")


def _prepare(data: bytes, **request):
    """Parse and price a decode (``lgi.decoding.prepare``), with the API's errors."""
    from lgi import decoding
    from lgi_dictco import LgiFormatError

    if request["max_pixels"] is None:
        request["max_pixels"] = decoding.MAX_OUTPUT_PIXELS
    try:
        return decoding.prepare(data, **request)
    except LgiFormatError as exc:
        raise FileFormatError(str(exc)) from None
    except decoding.DecodeError as exc:
        raise _api_error(exc) from None


def _api_error(exc) -> Exception:
    """An ``lgi.decoding.DecodeError`` as the API's typed error."""
    if exc.limit:
        return LimitError(str(exc), exc.option)
    if exc.option in ("backend", "device") or exc.option is None:
        return RendererError(str(exc))
    return OptionError(str(exc), exc.option)
