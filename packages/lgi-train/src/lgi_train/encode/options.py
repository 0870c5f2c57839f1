"""What the user asks of an encode: the size, the effort, where it runs. Everything else is tuning."""

from __future__ import annotations

import math
from dataclasses import dataclass

from lgi_train.encode.select import RateError
from lgi_train.encode.tuning import TUNINGS, Tuning

#: ``--quality`` presets, in bits per pixel.
QUALITY_BPP = {"low": 0.25, "medium": 0.5, "high": 1.0, "max": 1.5}
#: The smallest file the format can hold, about.
MIN_BYTES = 64


@dataclass(frozen=True)
class Options:
    """An encode request. At most one of ``bpp``, ``size`` (bytes) and ``gaussians`` (a fixed count, no
    rate control); none of them: 0.5 bpp. The file lands at or under the size asked for.

    ``tuning`` overrides the effort's :data:`~lgi_train.encode.tuning.TUNINGS` entry (benchmarks and
    research; None for users).
    """

    bpp: float | None = None
    size: int | None = None
    gaussians: int | None = None
    effort: str = "default"
    device: str = "cpu"
    seed: int = 0
    backend: str = "auto"
    tuning: Tuning | None = None

    def __post_init__(self) -> None:
        given = [name for name in ("bpp", "size", "gaussians") if getattr(self, name) is not None]
        if len(given) > 1:
            raise RateError(f"give one of bpp, size and gaussians, not {' and '.join(given)}")
        if self.bpp is not None and not 0 < self.bpp <= 24:
            raise RateError(f"bpp must be in (0, 24], got {self.bpp}")
        if self.size is not None and self.size < MIN_BYTES:
            raise RateError(f"a target of {self.size} bytes is below the smallest .lgi file (about {MIN_BYTES} bytes)")
        if self.gaussians is not None and self.gaussians < 1:
            raise RateError(f"the number of Gaussians must be >= 1, got {self.gaussians}")
        if self.effort not in TUNINGS:
            raise ValueError(f"unknown effort {self.effort!r}; choose one of {', '.join(TUNINGS)}")

    def resolved_tuning(self) -> Tuning:
        return self.tuning if self.tuning is not None else TUNINGS[self.effort]

    def budget(self, height: int, width: int) -> int | None:
        """The file's byte budget for an image of ``height`` x ``width`` (None: a fixed count)."""
        if self.gaussians is not None:
            return None
        if self.size is not None:
            return self.size
        bpp = 0.5 if self.bpp is None else self.bpp
        budget = int(math.floor(bpp * height * width / 8))
        if budget < MIN_BYTES:
            raise RateError(f"{bpp} bpp of a {width}x{height} image is {budget} bytes, below the smallest .lgi file "
                            f"(about {MIN_BYTES} bytes)")
        return budget
