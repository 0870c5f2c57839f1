"""The exceptions of LGI's Python API: one base class, one subclass per kind of problem.

Every error a caller can cause is one of these, with a message that names the problem and the argument
(``bpp``, ``max_pixels``) where one is at fault; none of them is a click exception, and none mentions a
command-line flag. The command line turns them into its one-line errors.
"""

from __future__ import annotations

import re

from lgi_dictco.errors import LgiFormatError

__all__ = ["FileFormatError", "ImageInputError", "LgiError", "LimitError", "OptionError", "RateTargetError",
           "RendererError", "cli_text"]


class LgiError(Exception):
    """The base class of every error LGI's API raises on purpose."""


class OptionError(LgiError, ValueError):
    """An argument, or a combination of arguments, that the call cannot take.

    Attributes:
        option: the name of the argument at fault (e.g. ``"bpp"``), or None.
    """

    def __init__(self, message: str, option: str | None = None):
        super().__init__(message)
        self.option = option


class ImageInputError(LgiError, ValueError):
    """The image given to encode cannot be read or used (missing, not an image, corrupt, an array of an
    unusable shape, dtype or range, more pixels than ``max_pixels``)."""


class RateTargetError(LgiError, ValueError):
    """The size asked for cannot be reached (e.g. fewer bytes than the smallest ``.lgi`` file)."""


class FileFormatError(LgiError, LgiFormatError):
    """The ``.lgi`` data is not a valid file: wrong magic, truncated, corrupted, beyond the format's
    limits. Also an ``lgi_dictco.LgiFormatError``, which the lower-level decoder raises."""


class LimitError(LgiError, ValueError):
    """A decode or encode that would exceed a safety limit (output pixels, rendering work).

    Attributes:
        option: the argument that raises the limit (``"max_pixels"``, ``"max_gaussians"`` or ``"max_work"``).
    """

    def __init__(self, message: str, option: str | None = None):
        super().__init__(message)
        self.option = option


class RendererError(LgiError, RuntimeError):
    """The renderer asked for cannot run here (e.g. the native library did not load)."""


def cli_text(message: object) -> str:
    """An API error's message as the command line says it: the arguments it names in backticks become
    the flags that set them (`` `max_pixels` `` → ``--max-pixels``)."""
    return re.sub(r"`([a-z][a-z0-9_]*)`", lambda m: "--" + m.group(1).replace("_", "-"), str(message))
