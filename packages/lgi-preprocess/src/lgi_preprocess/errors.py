"""The one exception type of lgi-preprocess."""

from __future__ import annotations


class PreprocessError(ValueError):
    """A problem a user can fix: an unreadable or oversized image, a bad parameter, a refused prompt.

    The message names the file (when there is one) and the cause in one line; the CLI prints it as is.
    """
