"""The one exception type of lgi-dictco's decoders."""


class LgiFormatError(ValueError):
    """A bitstream (.lgi or .dcae) is malformed, truncated, corrupted or beyond a documented limit.

    Decoders raise only this for bad input, with a message a person can act on: what was expected,
    what was found, and where in the file.
    """
