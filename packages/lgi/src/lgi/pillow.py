"""The Pillow plugin for ``.lgi``: ``Image.open`` reads it, ``Image.save`` writes it.

``import lgi`` registers it (as ``import pillow_avif`` or ``pillow_heif.register_heif_opener()`` do for
their formats)::

    import lgi
    from PIL import Image

    im = Image.open("photo.lgi")          # lazy: im.size comes from the header, nothing is drawn yet
    im.draft(None, (384, 256))            # optional: draw at a smaller size (at least this box)
    im.load()                             # renders the Gaussians now (at most once)
    im.save("photo.lgi", bpp=0.5)         # or size=BYTES, quality="low|medium|high|max", gaussians=N,
                                          #    effort="fast|default|max", seed=0, device="cpu"
    big = lgi.pillow.open("photo.lgi", scale=4)   # larger than stored: LGI draws at any size

Opening checks the container (magic, version, every chunk's CRC) and parses the header; a damaged file
raises :class:`lgi.FileFormatError` there, with what is wrong and where. Decoding happens in ``load()``
under the decoder's default limits on output pixels and rendering work. Saving takes RGB and L images
and every mode the encoder's image loader converts losslessly (palette, 1-bit, 16-bit, CMYK); an image
with transparency is refused (LGI stores no alpha), as JPEG refuses it.
"""

from __future__ import annotations

from typing import IO, Any

from PIL import Image, ImageFile

from lgi.errors import FileFormatError, ImageInputError

__all__ = ["FORMAT", "LgiImageFile", "open", "register"]

FORMAT = "LGI"
_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
_SAVE_OPTIONS = ("bpp", "size", "quality", "gaussians", "effort", "seed", "device")


def _accept(prefix: bytes) -> bool:
    from lgi_dictco.gauss import MAGIC

    return prefix[:len(MAGIC)] == MAGIC


class LgiImageFile(ImageFile.ImageFile):
    """A ``.lgi`` file opened by Pillow: the header is read in ``_open``, the Gaussians drawn in ``load``."""

    format = FORMAT
    format_description = "LGI Gaussian image"

    def _open(self) -> None:
        from lgi_dictco import LgiFormatError
        from lgi_dictco.gauss import read_header

        self._lgi_data = self.fp.read()
        try:
            header = read_header(self._lgi_data)
        except LgiFormatError as exc:
            raise FileFormatError(str(exc)) from None
        if header.channels not in _MODES:
            raise FileFormatError(f".lgi header: {header.channels} channels have no Pillow mode")
        self._mode = _MODES[header.channels]
        self._size = (header.width, header.height)
        self._stored_size = self._size
        self.info["gaussians"] = header.num_gaussians
        self.tile = []  # drawn by load(), not by a Pillow decoder
        self._drawn = False

    def draft(self, mode: str | None, size: tuple[int, int] | None) -> tuple[str, tuple[int, int, float, float]] | None:
        """Draw at the smallest size that covers ``size`` (keeping the aspect ratio), never larger than
        stored: what ``Image.thumbnail`` asks of JPEG, served exactly, since LGI draws at any size.
        ``mode`` is not changed. Returns ``(mode, box)`` as Pillow's draft does, or None once loaded."""
        if self._drawn or not size:
            return None
        w0, h0 = self._stored_size
        scale = min(1.0, max(size[0] / w0, size[1] / h0))
        self._draw_at(width=max(1, round(w0 * scale)))
        return self.mode, (0, 0, self.size[0], self.size[1])

    def _draw_at(self, scale: float | None = None, width: int | None = None) -> None:
        """Set the size ``load`` draws at (:func:`lgi.decoding.output_size`: the width decides the height)."""
        from lgi.api import _api_error
        from lgi.decoding import DecodeError, output_size

        try:
            w, _ = output_size(*self._stored_size, scale, width)
            self._size = output_size(*self._stored_size, None, w)
        except DecodeError as exc:
            raise _api_error(exc) from None

    def load(self) -> Any:
        if not self._drawn:
            from lgi.api import decode

            same = self.size == self._stored_size
            pixels = decode(self._lgi_data, width=None if same else self.size[0])
            # Set the core image directly: Pillow's raw decoder would map self.filename, the .lgi itself.
            self.im = Image.frombytes(self.mode, self.size, pixels.tobytes()).im
            self._drawn = True
        return Image.Image.load(self)


def open(fp: Any, *, scale: float | None = None, width: int | None = None) -> LgiImageFile:
    """Open a ``.lgi`` file as a Pillow image drawn at ``scale`` times its stored size, or ``width``
    pixels wide (larger or smaller: LGI draws at any size). ``Image.open`` opens it at its stored size."""
    im = Image.open(fp, formats=[FORMAT])
    assert isinstance(im, LgiImageFile)
    if scale is not None or width is not None:
        im._draw_at(scale, width)
    return im


def _save(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    from lgi.api import encode

    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (im.mode == "P" and "transparency" in im.info):
        raise ImageInputError(f"cannot write mode {im.mode} as LGI: it stores no alpha; "
                              "convert('RGB') the image first (or composite it over a background)")
    unknown = sorted(k for k in im.encoderinfo if k not in _SAVE_OPTIONS and k not in _PILLOW_KEYS)
    if unknown:
        from lgi.errors import OptionError

        raise OptionError(f"LGI saves with {', '.join(_SAVE_OPTIONS)}; not with {', '.join(unknown)}", unknown[0])
    options = {k: im.encoderinfo[k] for k in _SAVE_OPTIONS if k in im.encoderinfo}
    fp.write(encode(im, **options))


# Keys Pillow itself puts in encoderinfo, or that callers pass to every format.
_PILLOW_KEYS = {"format", "append", "save_all", "append_images"}


def register() -> None:
    """Register ``.lgi`` with Pillow (open, save, the extension, the MIME type). Idempotent."""
    Image.register_open(FORMAT, LgiImageFile, _accept)
    Image.register_save(FORMAT, _save)
    Image.register_extension(FORMAT, ".lgi")
    Image.register_mime(FORMAT, "image/x-lgi")
