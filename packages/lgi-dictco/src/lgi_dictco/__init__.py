"""Entropy coding and bitstreams: the DCAE learned codec and the .lgi container.

Importing this package is cheap: torch and compressai load only when a submodule that needs them is
imported.
"""

from lgi_dictco.errors import LgiFormatError

__version__ = "0.2.0"
__all__ = ["LgiFormatError", "__version__"]
