"""Entropy coding of integer symbol streams with per-stream models stored in the stream.

Every stream is coded with compressai's rANS coder (``BufferedRansEncoder`` / ``RansDecoder``) under a
static frequency model built from the stream itself and written in front of it. The model is stored
compactly and rebuilt with integer arithmetic only, so the CDF the decoder uses is bit-identical to
the encoder's on every machine.

The model: each symbol's count is quantized in the log domain to a *code* c (0 = never occurs,
otherwise c ≈ 1 + 2·log2(count), i.e. steps of √2). Codes are stored as a first value plus
Exp-Golomb-coded differences, which costs about 1.3 bits per symbol for smooth or frequency-sorted
histograms. The √2 steps cost at most ~0.03 bits per coded symbol (usually < 0.01) against the
exact histogram. Frequencies are the integer weights ``isqrt(2**(c - 1 + 32))`` scaled to a total of
2**16 (compressai's precision), every occurring symbol getting at least 1.

Large alphabets (positions' Morton deltas) use the *bucketed* stream: a value v ≥ 0 is coded as its
bit length b with the frequency model and its b − 1 low bits raw.
"""

from __future__ import annotations

import array
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
from math import isqrt

import numpy as np

from lgi_dictco.bitio import BitReader, BitWriter, read_varint, write_varint
from lgi_dictco.errors import LgiFormatError

PRECISION = 16
TOTAL = 1 << PRECISION
MAX_CODE = 63
MAX_ALPHABET = 4096  # each occurring symbol needs a frequency >= 1 out of 2**16
MAX_SYMBOLS = 1 << 24
MAX_BIT_LENGTH = 48  # bucketed streams code values < 2**48

KIND_DIRECT = 0
KIND_BUCKETED = 1


def _weight(code: int) -> int:
    """Integer weight of a log-domain code: floor(2**((code - 1) / 2) * 2**16), exact."""
    return isqrt(1 << (code - 1 + 32)) if code > 0 else 0


_WEIGHTS = [_weight(c) for c in range(MAX_CODE + 1)]


@lru_cache(maxsize=256)
def _frequencies(codes: tuple[int, ...]) -> tuple[int, ...]:
    """FrequencyTable.frequencies of ``codes`` (cached: a decoder asks twice per stream)."""
    w = [_WEIGHTS[c] for c in codes]
    total_w = sum(w)
    if total_w == 0:
        raise LgiFormatError("entropy model has no symbol with a non-zero count")
    present = len(w) - w.count(0)
    budget = TOTAL - 1 - present  # each present symbol first gets 1, the rest shared by weight
    freqs = [(1 + (x * budget) // total_w) if x else 0 for x in w]
    diff = TOTAL - 1 - sum(freqs)  # >= 0 by construction (floors)
    freqs[w.index(max(w))] += diff  # the heaviest symbol, the first of equals
    return tuple(freqs)


@dataclass(frozen=True)
class FrequencyTable:
    """A static model over the alphabet ``0 .. len(codes) - 1``.

    Attributes:
        codes: [L] log-domain count codes (0 = absent).
    """

    codes: tuple[int, ...]

    @classmethod
    def from_symbols(cls, symbols: np.ndarray, alphabet_size: int) -> FrequencyTable:
        if not 1 <= alphabet_size <= MAX_ALPHABET:
            raise ValueError(f"alphabet size {alphabet_size} outside 1..{MAX_ALPHABET}")
        counts = np.bincount(np.asarray(symbols, dtype=np.int64), minlength=alphabet_size)
        if counts.size > alphabet_size:
            raise ValueError(f"a symbol is >= the alphabet size {alphabet_size}")
        codes = np.zeros(alphabet_size, dtype=np.int64)
        nz = counts > 0
        codes[nz] = np.clip(np.rint(1 + 2 * np.log2(counts[nz])), 1, MAX_CODE)
        return cls(tuple(int(c) for c in codes))

    def frequencies(self) -> list[int]:
        """Integer frequencies summing to 2**16 - 1 (integer arithmetic only: bit-exact everywhere).

        The last unit of the 2**16 range belongs to a guard symbol (see :meth:`cdf`).
        """
        return list(_frequencies(self.codes))

    def cdf(self) -> list[int]:
        """compressai layout over L + 1 symbols plus the escape: L + 3 entries.

        compressai keeps frequencies in 16 bits, so no symbol may own the whole 2**16 range (a lone
        symbol would wrap to 0 and divide by zero). Symbol L is a guard with frequency 1 that valid
        data never contains; the escape (L + 1) has zero width, so the decoder never enters its
        bypass path, whatever the input.
        """
        out = list(accumulate([*_frequencies(self.codes), 1], initial=0))
        out.append(out[-1])
        return out

    def cost_bits(self, symbols: np.ndarray) -> float:
        """Ideal code length of ``symbols`` under this table, in bits (for planning, not for coding)."""
        return float(self.code_lengths()[np.asarray(symbols, dtype=np.int64)].sum())

    def code_lengths(self, size: int | None = None) -> np.ndarray:
        """[size] the bits each symbol costs under this table: −log2(frequency / 2**16), the code lengths
        of the rANS coder that uses :meth:`cdf`, so a rate estimate built on them prices what the file
        pays (the fine-tuning's rate term, ``lgi_train.compress.rate``). A symbol the table lacks is
        priced as one occurrence would be: the code length of the smallest present weight.

        Args:
            size: the alphabet to cover (default: the table's own); symbols beyond the table are absent.
        """
        freqs = np.asarray(self.frequencies(), dtype=np.float64)
        size = len(freqs) if size is None else size
        w = np.asarray([_WEIGHTS[c] for c in self.codes], dtype=np.float64)
        budget = TOTAL - 1 - np.count_nonzero(w)
        single = 1 + (_WEIGHTS[1] * budget) // w.sum()  # a count of 1 among these counts
        bits = np.full(size, -np.log2(single / TOTAL))
        present = freqs[:size] > 0
        bits[:len(present)][present] = -np.log2(freqs[:size][present] / TOTAL)
        return bits

    def write(self, bw: BitWriter) -> None:
        bw.write_ue(len(self.codes) - 1)
        bw.write(self.codes[0], 6)
        for prev, cur in zip(self.codes, self.codes[1:]):
            bw.write_se(cur - prev)

    @classmethod
    def read(cls, br: BitReader, max_alphabet: int = MAX_ALPHABET) -> FrequencyTable:
        size = br.read_ue() + 1
        if size > max_alphabet:
            raise LgiFormatError(f"entropy model alphabet {size} exceeds the limit {max_alphabet}")
        first = br.read(6)
        codes = list(accumulate(br.read_se_many(size - 1), initial=first))
        if not 0 <= min(codes) <= max(codes) <= MAX_CODE:
            bad = next(c for c in codes if not 0 <= c <= MAX_CODE)
            raise LgiFormatError(f"entropy model code {bad} outside 0..{MAX_CODE}")
        return cls(tuple(codes))


def _rans_encode(symbols: np.ndarray, table: FrequencyTable) -> bytes:
    from lgi_dictco._compressai import ans

    cdf = table.cdf()
    seq = symbols.tolist()
    if len(seq) == 1:
        # compressai 1.2.8's BufferedRansEncoder corrupts its heap (double free) when given exactly one
        # symbol; code it twice and let the decoder drop the copy (_rans_decode mirrors this).
        seq = seq * 2
    enc = ans.BufferedRansEncoder()
    enc.encode_with_indexes(seq, [0] * len(seq), [cdf], [len(cdf)], [0])
    return enc.flush()


def _rans_decode(payload: bytes, n: int, table: FrequencyTable) -> np.ndarray:
    from lgi_dictco._compressai import ans

    cdf = table.cdf()
    # The decoder reads at most one 32-bit word per symbol plus its 64-bit state; zero padding keeps
    # a corrupted payload from reading past the buffer (the escape symbol has zero width: no bypass).
    coded_n = 2 if n == 1 else n  # see _rans_encode
    padded = payload + bytes(4 * (coded_n + 4))
    out = ans.RansDecoder().decode_with_indexes(padded, [0] * coded_n, [cdf], [len(cdf)], [0])
    # array.array converts the list of Python ints in C, faster than numpy's per-item conversion.
    return np.frombuffer(array.array("q", out), dtype=np.int64)[:n]


def encode_stream(symbols: np.ndarray, alphabet_size: int | None = None) -> bytes:
    """Code non-negative integers; the result is self-describing except for the symbol count.

    Args:
        symbols: [n] non-negative integers.
        alphabet_size: if given and <= 4096, a direct model (symbols must be < alphabet_size; the
            stored model covers 0 .. the largest symbol);
            otherwise (or if None) the bucketed model, valid for any value < 2**48.

    Returns:
        bytes: kind, model, rANS payload length and payload, then (bucketed) the raw low bits.
    """
    symbols = np.asarray(symbols, dtype=np.int64).ravel()
    if symbols.size and symbols.min() < 0:
        raise ValueError("encode_stream takes non-negative integers")
    bw = BitWriter()
    if alphabet_size is not None and alphabet_size <= MAX_ALPHABET:
        if symbols.size and symbols.max() >= alphabet_size:
            raise ValueError(f"symbol {symbols.max()} >= alphabet size {alphabet_size}")
        kind, coded, raw = KIND_DIRECT, symbols, None
    else:
        kind = KIND_BUCKETED
        if symbols.size and symbols.max() >= 1 << MAX_BIT_LENGTH:
            raise ValueError("bucketed streams take values < 2**48")
        coded = np.zeros_like(symbols)
        nz = symbols > 0
        coded[nz] = np.floor(np.log2(symbols[nz])).astype(np.int64) + 1  # bit length
        # float log2 can be off by one near powers of two: correct exactly.
        coded[nz] += (symbols[nz] >> coded[nz]) > 0
        coded[nz] -= (symbols[nz] >> (coded[nz] - 1)) == 0
        raw = (symbols - np.where(nz, 1 << np.maximum(coded - 1, 0), 0), np.maximum(coded - 1, 0))
    header = bytes([kind])
    if symbols.size == 0:
        return header + write_varint(0)
    # The model covers 0..max: symbols above the largest one never occur, so their (zero) codes are
    # not stored (the decoder's alphabet is the model's own size; values are checked against it).
    table = FrequencyTable.from_symbols(coded, int(coded.max()) + 1)
    table.write(bw)
    model = bw.getvalue()
    payload = _rans_encode(coded, table)
    out = header + write_varint(len(model)) + model + write_varint(len(payload)) + payload
    if raw is not None:
        rw = BitWriter()
        rw.write_array(raw[0], raw[1])
        out += rw.getvalue()
    return out


def decode_stream(data: bytes, n: int, what: str = "stream", max_value: int = 1 << 48) -> np.ndarray:
    """Inverse of :func:`encode_stream` for ``n`` symbols; every length is checked first.

    Raises:
        LgiFormatError: truncated or inconsistent data, or a value above ``max_value``.
    """
    if n > MAX_SYMBOLS:
        raise LgiFormatError(f"{what}: {n} symbols exceed the limit {MAX_SYMBOLS}")
    if len(data) < 1 or data[0] not in (KIND_DIRECT, KIND_BUCKETED):
        raise LgiFormatError(f"{what}: unknown stream kind {data[0] if data else 'none (empty)'}")
    kind = data[0]
    model_len, pos = read_varint(data, 1, what, limit=len(data))
    if model_len == 0:
        if n:
            raise LgiFormatError(f"{what}: empty stream but {n} symbols expected")
        return np.zeros(0, dtype=np.int64)
    if pos + model_len > len(data):
        raise LgiFormatError(f"{what}: model is truncated")
    table = FrequencyTable.read(BitReader(data[pos:pos + model_len], f"{what} model"))
    pos += model_len
    payload_len, pos = read_varint(data, pos, what, limit=len(data))
    if pos + payload_len > len(data):
        raise LgiFormatError(f"{what}: payload is truncated ({payload_len} bytes announced, "
                             f"{len(data) - pos} present)")
    coded = _rans_decode(bytes(data[pos:pos + payload_len]), n, table)
    pos += payload_len
    freqs = np.asarray(table.frequencies())
    if coded.size and (coded.min() < 0 or coded.max() >= freqs.size
                       or (np.bincount(coded, minlength=freqs.size)[freqs == 0] > 0).any()):
        raise LgiFormatError(f"{what}: payload decodes to symbols the model says never occur (corrupt data)")
    if kind == KIND_DIRECT:
        values = coded
    else:
        # A bit length above the encoder's 48 would shift past int64 and wrap to a negative value.
        if coded.size and coded.max() > MAX_BIT_LENGTH:
            raise LgiFormatError(f"{what}: a value claims {int(coded.max())} bits, the format allows at most "
                                 f"{MAX_BIT_LENGTH} (corrupt or forged data)")
        nbits = np.maximum(coded - 1, 0)
        low = BitReader(bytes(data[pos:]), f"{what} raw bits").read_array(nbits)
        values = np.where(coded > 0, (np.int64(1) << nbits) + low, 0)
    if values.size and values.min() < 0:
        raise LgiFormatError(f"{what}: negative value {values.min()} (corrupt or forged data)")
    if values.size and values.max() > max_value:
        raise LgiFormatError(f"{what}: value {values.max()} exceeds the limit {max_value}")
    return values


def zigzag(values: np.ndarray) -> np.ndarray:
    """Signed → unsigned: 0, -1, 1, -2, 2 → 0, 1, 2, 3, 4."""
    v = np.asarray(values, dtype=np.int64)
    return np.where(v >= 0, 2 * v, -2 * v - 1)


def unzigzag(values: np.ndarray) -> np.ndarray:
    u = np.asarray(values, dtype=np.int64)
    return np.where(u % 2 == 0, u // 2, -(u + 1) // 2)
