"""Bit-level writing and bounds-checked reading: raw bits, varints, Exp-Golomb codes.

Readers treat their input as hostile: every read is checked against the end of the buffer and fails
with :class:`LgiFormatError` instead of reading past it.
"""

from __future__ import annotations

import functools
import re

import numpy as np

from lgi_dictco.errors import LgiFormatError


class BitWriter:
    """Appends bits MSB-first; ``getvalue()`` pads the last byte with zeros."""

    def __init__(self) -> None:
        self._bits: list[np.ndarray] = []

    def write(self, value: int, nbits: int) -> None:
        if nbits == 0:
            return
        if value < 0 or value >> nbits:
            raise ValueError(f"{value} does not fit in {nbits} bits")
        self._bits.append(((value >> np.arange(nbits - 1, -1, -1)) & 1).astype(np.uint8))

    def write_array(self, values: np.ndarray, nbits: np.ndarray | int) -> None:
        """Write many unsigned values, each with its own bit count (vectorized)."""
        values = np.asarray(values, dtype=np.int64).ravel()
        nbits = np.broadcast_to(np.asarray(nbits, dtype=np.int64), values.shape)
        if values.size == 0 or int(nbits.max(initial=0)) == 0:
            return
        if (values < 0).any() or (values >> nbits).any():
            raise ValueError("a value does not fit in its bit count")
        width = int(nbits.max())
        shifts = np.arange(width - 1, -1, -1)
        grid = (values[:, None] >> shifts[None, :]) & 1  # [n, width], MSB-first, left-padded
        keep = shifts[None, :] < nbits[:, None]
        self._bits.append(grid[keep].astype(np.uint8))

    def write_ue(self, value: int) -> None:
        """Exp-Golomb order 0 of an unsigned integer."""
        v = value + 1
        n = v.bit_length()
        self.write(0, n - 1)
        self.write(v, n)

    def write_se(self, value: int) -> None:
        """Exp-Golomb order 0 of a signed integer (zigzag: 0, -1, 1, -2, ...)."""
        self.write_ue(2 * value - 1 if value > 0 else -2 * value)

    def getvalue(self) -> bytes:
        if not self._bits:
            return b""
        return np.packbits(np.concatenate(self._bits)).tobytes()


class BitReader:
    """Reads what :class:`BitWriter` wrote; never past the end of the buffer."""

    def __init__(self, data: bytes, what: str = "bit stream") -> None:
        self._bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8))
        self._pos = 0
        self._what = what
        self._str: str | None = None

    @property
    def remaining(self) -> int:
        return self._bits.size - self._pos

    def _need(self, n: int) -> None:
        if n > self.remaining:
            raise LgiFormatError(f"{self._what} is truncated: needed {n} more bits, {self.remaining} left")

    def read(self, nbits: int) -> int:
        if nbits == 0:
            return 0
        self._need(nbits)
        chunk = self._bits[self._pos:self._pos + nbits]
        self._pos += nbits
        return int(chunk.astype(np.int64) @ (1 << np.arange(nbits - 1, -1, -1, dtype=np.int64)))

    def read_array(self, nbits: np.ndarray) -> np.ndarray:
        nbits = np.asarray(nbits, dtype=np.int64).ravel()
        if nbits.size and (nbits.min() < 0 or nbits.max() > 62):
            # int64 holds 63 value bits; more would wrap to a negative number.
            raise LgiFormatError(f"{self._what}: a field of {int(nbits.max())} bits does not fit in 62 bits")
        total = int(nbits.sum())
        self._need(total)
        out = np.zeros(nbits.size, dtype=np.int64)
        if total == 0:
            return out
        bits = self._bits[self._pos:self._pos + total].astype(np.int64)
        self._pos += total
        ends = np.cumsum(nbits)
        # Each bit's significance within its value: the bits left until its value's end, minus one.
        place = np.repeat(ends, nbits) - 1 - np.arange(total)
        some = nbits > 0
        # A value's bits are one contiguous run: a segmented sum (reduceat) adds them; values of zero bits stay 0.
        out[some] = np.add.reduceat(bits << place, (ends - nbits)[some])
        return out

    def read_ue(self, max_bits: int = 40) -> int:
        zeros = 0
        while True:
            self._need(1)
            if self._bits[self._pos]:
                break
            zeros += 1
            self._pos += 1
            if zeros > max_bits:
                raise LgiFormatError(f"{self._what}: Exp-Golomb code longer than {max_bits} bits")
        return self.read(zeros + 1) - 1

    def read_se(self) -> int:
        u = self.read_ue()
        return (u + 1) // 2 if u % 2 else -(u // 2)

    def _text(self) -> str:
        """The buffer as a string of '0'/'1' (built once): string search is the fast way to scan codes."""
        if self._str is None:
            self._str = self._bits.tobytes().translate(_BIT_CHARS).decode("ascii")
        return self._str

    def read_ue_many(self, n: int, max_bits: int = 40) -> list[int]:
        """``n`` consecutive :meth:`read_ue` codes, with the same checks and errors, much faster."""
        s, pos, end = self._text(), self._pos, self._bits.size
        if max_bits == 40 and n:
            # Fast path: one regular-expression scan finds the codes (z zeros, a one, z bits; the code
            # is prefix-free, so at a code's start exactly one alternative matches). It is taken only
            # when the first n matches tile the bits from pos without a gap; anything else (a code
            # too long, a truncated one) goes through the exact loop below, which raises its errors.
            codes = _UE_CODE.findall(s, pos, min(end, pos + n * (2 * max_bits + 1)))[:n]
            if len(codes) == n:
                run = "".join(codes)
                if s.startswith(run, pos):
                    self._pos = pos + len(run)
                    # A code's leading zeros do not change its binary value: int(code, 2) = value + 1.
                    return [v - 1 for v in map(_binary, codes)]
        out = []
        for _ in range(n):
            one = s.find("1", pos, min(end, pos + max_bits + 1))
            if one < 0:
                self._pos = pos
                if end - pos > max_bits:
                    raise LgiFormatError(f"{self._what}: Exp-Golomb code longer than {max_bits} bits")
                raise LgiFormatError(f"{self._what} is truncated: an Exp-Golomb code runs past the end")
            stop = 2 * one - pos + 1
            if stop > end:
                self._pos = pos
                raise LgiFormatError(f"{self._what} is truncated: needed {stop - one} more bits, {end - one} left")
            out.append(int(s[one:stop], 2) - 1)
            pos = stop
        self._pos = pos
        return out

    def read_se_many(self, n: int) -> list[int]:
        """``n`` consecutive :meth:`read_se` codes."""
        return [(u + 1) // 2 if u % 2 else -(u // 2) for u in self.read_ue_many(n)]


_BIT_CHARS = bytes.maketrans(b"\x00\x01", b"01")
_binary = functools.partial(int, base=2)
# An Exp-Golomb code of at most 40 leading zeros (read_ue_many's default limit), as text.
_UE_CODE = re.compile("|".join(f"0{{{z}}}1[01]{{{z}}}" for z in range(41)))


def write_varint(value: int) -> bytes:
    """LEB128 unsigned varint."""
    if value < 0:
        raise ValueError("varints are unsigned")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def read_varint(data: bytes | memoryview, pos: int, what: str, limit: int = 1 << 40) -> tuple[int, int]:
    """Read a varint at ``pos``; returns (value, new position). Values above ``limit`` are rejected."""
    value = shift = 0
    while True:
        if pos >= len(data):
            raise LgiFormatError(f"{what}: truncated while reading a number")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if value > limit:
            raise LgiFormatError(f"{what}: value {value} exceeds the limit {limit}")
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise LgiFormatError(f"{what}: malformed number (too long)")
