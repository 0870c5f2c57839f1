"""compressai, imported once and quietly: ``from lgi_dictco._compressai import ans``.

compressai 1.2.8 calls ``torch.jit.script`` at import time, which torch ≥ 2.10 deprecates with a
FutureWarning. The warning is about compressai's code, not the user's, so the first import goes
through this module and silences it; later imports find compressai already loaded.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import compressai  # noqa: F401 - loaded here first, quietly
    from compressai import ans

__all__ = ["ans"]
