"""Bounded rANS decoding of compressai bitstreams: no input makes the decoder read past its buffer.

compressai's ``RansDecoder`` trusts its input. It reads one 32-bit word per symbol at most, but a
symbol that lands in a CDF's escape interval switches it to *bypass mode*, which reads a count of
4-bit groups and then that many groups, with no bound on either. A forged stream therefore reads past
the end of its buffer: a segfault, or process memory leaking into the decoded image.

:class:`BoundedRansDecoder` decodes exactly what compressai decodes for every stream a compressai
encoder writes, and is memory-safe and deterministic on any other:

1. A stream must be a whole number of 32-bit words holding at least the 64-bit coder state
   (compressai's encoders write nothing else).
2. Fast path: compressai decodes with every CDF widened by one zero-width entry after its escape
   symbol. The escape is then an ordinary symbol, bypass mode is never entered and at most one word
   is read per symbol, so ``4 · (n + 2)`` bytes of zero padding bound every read. Up to and including
   the first escape symbol the result is bit-identical to compressai's own decode.
3. Escapes are rare in real images (the Gaussian tails hold ~1e-9 of the mass), but possible: on the
   first one the stream is decoded again from its start by a pure-Python twin of compressai's decoder
   that reads words past the end as zeros (like the padding) and rejects a bypass longer than the
   8 groups (32 bits) a compressai encoder ever writes.
"""

from __future__ import annotations

import struct
from bisect import bisect_right

import numpy as np

from lgi_dictco.errors import LgiFormatError

_PRECISION = 16  # compressai's CDF precision
_MASK = (1 << _PRECISION) - 1
_RANS_L = 1 << 31  # lower bound of the coder state's normalisation interval
_BYPASS_BITS = 4
_BYPASS_MAX = (1 << _BYPASS_BITS) - 1
_MAX_BYPASS_GROUPS = 32 // _BYPASS_BITS  # an int32 value never needs more


def check_stream(stream: bytes, what: str) -> None:
    """Raise :class:`LgiFormatError` unless ``stream`` can be a compressai rANS stream."""
    if len(stream) < 8 or len(stream) % 4:
        raise LgiFormatError(
            f"{what}: a rANS stream is a whole number of 32-bit words holding at least the 8-byte "
            f"coder state; this one has {len(stream)} bytes (truncated or forged file)"
        )


def _int32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


class _PythonRans:
    """compressai's ``RansDecoder.decode_stream``, in Python, with every read checked."""

    def __init__(self, stream: bytes, what: str):
        self._words = struct.unpack(f"<{len(stream) // 4}I", stream)
        self._pos = 2
        self._x = self._words[0] | self._words[1] << 32
        self._what = what

    def _word(self) -> int:
        pos = self._pos
        self._pos += 1
        return self._words[pos] if pos < len(self._words) else 0

    def _bits(self, x: int) -> tuple[int, int]:
        val = x & _BYPASS_MAX
        x >>= _BYPASS_BITS
        if x < _RANS_L:
            x = (x << 32) | self._word()
        return val, x

    def decode(self, indexes, cdfs, cdf_lengths, offsets) -> list[int]:
        x = self._x
        out = []
        for idx in indexes:
            cdf = cdfs[idx]
            size = cdf_lengths[idx]
            cum = x & _MASK
            s = bisect_right(cdf, cum, 0, size) - 1
            start = cdf[s]
            x = (cdf[s + 1] - start) * (x >> _PRECISION) + cum - start
            if x < _RANS_L:
                x = (x << 32) | self._word()
            value = s
            if s == size - 2:  # the escape symbol: the value follows in bypass groups
                val, x = self._bits(x)
                n_groups = val
                while val == _BYPASS_MAX and n_groups <= _MAX_BYPASS_GROUPS:
                    val, x = self._bits(x)
                    n_groups += val
                if n_groups > _MAX_BYPASS_GROUPS:
                    raise LgiFormatError(
                        f"{self._what}: an escaped value claims {n_groups} 4-bit groups, at most "
                        f"{_MAX_BYPASS_GROUPS} are ever written (corrupt data)"
                    )
                raw = 0
                for j in range(n_groups):
                    val, x = self._bits(x)
                    raw |= val << (j * _BYPASS_BITS)
                raw = _int32(raw)
                value = -(raw >> 1) - 1 if raw & 1 else (raw >> 1) + size - 2
            out.append(_int32(value + offsets[idx]))
        self._x = x
        return out


class BoundedRansDecoder:
    """Decodes one compressai rANS stream in successive calls, never reading past its buffer.

    Args:
        stream: the coded bytes.
        max_symbols: how many symbols all calls together will decode (sizes the padding).
        what: names the stream in error messages.

    Raises:
        LgiFormatError: the stream cannot be a rANS stream, or (when decoding) it holds an impossible
            escape.
    """

    def __init__(self, stream: bytes, max_symbols: int, what: str):
        from lgi_dictco._compressai import ans

        stream = bytes(stream)
        check_stream(stream, what)
        self._stream, self._what = stream, what
        self._left = int(max_symbols)
        self._fast = ans.RansDecoder()
        self._fast.set_stream(stream + bytes(4 * (self._left + 2)))
        self._history: list[tuple[np.ndarray, list, list[int], list[int]]] = []
        self._slow: _PythonRans | None = None

    def decode(self, indexes: list[int], cdfs: list[list[int]], cdf_lengths: list[int],
               offsets: list[int]) -> list[int]:
        """Decode ``len(indexes)`` symbols, symbol i with CDF ``cdfs[indexes[i]]`` (compressai layout).

        Returns:
            the values (symbol + offset), as compressai's ``decode_stream`` returns them.
        """
        if len(indexes) > self._left:
            raise ValueError(f"decoding {len(indexes)} symbols, only {self._left} were provided for")
        self._left -= len(indexes)
        if self._slow is None:
            wide = [row[:n] + [row[n - 1]] for row, n in zip(cdfs, cdf_lengths)]
            values = self._fast.decode_stream(indexes, wide, [n + 1 for n in cdf_lengths], offsets)
            idx = np.asarray(indexes, dtype=np.int64)
            symbols = np.asarray(values, dtype=np.int64) - np.asarray(offsets, dtype=np.int64)[idx]
            if not (symbols == np.asarray(cdf_lengths, dtype=np.int64)[idx] - 2).any():
                self._history.append((idx.astype(np.int32), cdfs, cdf_lengths, offsets))
                return values
            # An escape: compressai would enter bypass mode here. Redo the stream safely from its start.
            self._slow = _PythonRans(self._stream, self._what)
            for past in self._history:
                self._slow.decode(past[0].tolist(), *past[1:])
            self._history.clear()
        return self._slow.decode(indexes, cdfs, cdf_lengths, offsets)
