"""The exception type of lgi-preprocess, and its one subclass: an image over a pixel limit."""

from __future__ import annotations


class PreprocessError(ValueError):
    """A problem a user can fix: an unreadable or oversized image, a bad parameter, a refused prompt.

    The message names the file (when there is one) and the cause in one line; the CLI prints it as is.
    """


class ImageTooLarge(PreprocessError):
    """An image refused from its header for having more pixels than the caller's ``max_pixels``.

    Attributes:
        width, height: the image's size; limit: the ``max_pixels`` it exceeds (so a caller can say it in
            its own terms: the message names the command line's ``--max-pixels``).
    """

    def __init__(self, message: str, width: int, height: int, limit: int):
        super().__init__(message)
        self.width, self.height, self.limit = width, height, limit
