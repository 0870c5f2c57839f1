"""A differentiable estimate of the bits of a fitted set's values, for fine-tuning on D + λ·R.

The ``.lgi`` file codes every own value of a group (shape, colour) as an integer symbol in one rANS
stream per (dimension, precision class), under a frequency table of that stream's symbols
(:mod:`lgi_dictco.gauss.format`). The rate model here is that coder's own model, made differentiable:

- the tables are the coder's own: per stream, the ``lgi_dictco.entropy.FrequencyTable`` that
  ``encode_stream`` would build from the symbols the values round to now, and its code lengths
  (``FrequencyTable.code_lengths``: −log2 of the integer frequencies the rANS coder uses; a symbol the
  stream lacks is priced as one occurrence). One model object gives both the coder's CDF and this
  rate, as compressai's entropy models do; refreshed every few steps and held constant in between (no
  gradient flows through the counts);
- a value's cost is the table's −log2 p interpolated linearly between the two symbols around its
  continuous grid coordinate, so its gradient points to the cheaper neighbour: a value whose error
  costs little drifts onto the more frequent symbol, and the histogram sharpens as it does.

The distortion keeps its exact straight-through rounding (:func:`~lgi_train.compress.codec.ste_grid`);
only the rate sees the continuous coordinate. Positions are not in the estimate: their Morton deltas
cost what the density of Gaussians dictates, which fine-tuning barely moves. Codebook entries (off by
default) are not either: the file stores them in fixed-width bits.

The weight λ is a price in decibels: the fine-tuning loss is ``D·(1 + λ·ln10/10 · R/npx)`` with D
held constant inside the bracket, whose gradient is that of ``log D + λ·ln10/10 · bpp``, i.e. of
``−PSNR + λ·bpp`` up to a factor. A bit per pixel is given up wherever it buys less than λ dB.
"""

from __future__ import annotations

import math

import torch

DB_PER_LOG = 10.0 / math.log(10.0)  # d PSNR / d log(MSE), in dB


class GroupRate:
    """Bits of one :class:`~lgi_train.compress.codec._Group`'s own values under per-stream tables."""

    def __init__(self, group, refresh_every: int = 20):
        self.group = group
        self.refresh_every = refresh_every
        self._bits: torch.Tensor | None = None  # [K, D, L] −log2 p per (class, dimension, symbol)
        self._calls = 0
        self._base: torch.Tensor | None = None

    def _coordinates(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        g = self.group
        levels = g.own_levels
        u = ((g.own_values - g.lo) / g.own_steps).clamp(min=0)
        return torch.minimum(u, levels - 1), g.own_classes, levels

    @torch.no_grad()
    def refresh(self) -> None:
        """Rebuild the tables from the symbols the values round to now: the coder's own models."""
        import numpy as np

        from lgi_dictco.entropy import FrequencyTable

        g = self.group
        u, cls, levels = self._coordinates()
        k, d = g.steps.shape
        size = int(g.levels.max().item()) if g.levels.numel() else 1
        q = torch.minimum(torch.round(u), levels - 1).long().cpu().numpy()
        cls = cls.cpu().numpy()
        alphabets = g.levels.long().cpu().numpy()
        bits = np.zeros((k, d, size), np.float32)
        for c in range(k):
            mine = q[cls == c]
            for j in range(d):
                if mine.shape[0]:  # an empty stream costs nothing whatever its table
                    table = FrequencyTable.from_symbols(mine[:, j], int(alphabets[c, j]))
                    bits[c, j] = table.code_lengths(size)
        self._bits = torch.from_numpy(bits).to(u.device)

    def bits(self) -> torch.Tensor:
        """Estimated bits of the group's own values (scalar, differentiable in them)."""
        if self.group.own_values.shape[0] == 0:
            return self.group.own_values.sum() * 0
        if self._bits is None or self._calls % self.refresh_every == 0:
            self.refresh()
        self._calls += 1
        u, cls, _ = self._coordinates()
        table = self._bits
        size = table.shape[2]
        if self._base is None:  # the flat index of (class, dimension, symbol 0) of every value
            dims = torch.arange(u.shape[1], device=u.device)[None]
            self._base = (cls[:, None] * u.shape[1] + dims) * size
        i0 = torch.floor(u.detach()).long().clamp(max=size - 1)
        i1 = (i0 + 1).clamp(max=size - 1)
        frac = u - i0
        flat = table.view(-1)
        return ((1 - frac) * flat[self._base + i0] + frac * flat[self._base + i1]).sum()


class SetRate:
    """The rate term of a :class:`~lgi_train.compress.codec.QuantizedSet`: shape and colour values."""

    def __init__(self, qset, refresh_every: int = 20):
        self.groups = [GroupRate(qset.shape, refresh_every), GroupRate(qset.color, refresh_every)]
        self.pixels = qset.height * qset.width

    def bpp(self) -> torch.Tensor:
        return sum(g.bits() for g in self.groups) / self.pixels


def rate_weighted(loss: torch.Tensor, bpp: torch.Tensor, lam_db: float) -> torch.Tensor:
    """``loss·(1 + λ/DB_PER_LOG·bpp)`` with ``loss`` constant in the bracket (module docstring)."""
    return loss + loss.detach() * (lam_db / DB_PER_LOG) * bpp
