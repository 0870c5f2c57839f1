"""Entropy coding of symbol streams: exact round trips, near-ideal size, integer-only models, hostile input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lgi_dictco import LgiFormatError
from lgi_dictco.bitio import BitReader, BitWriter, read_varint, write_varint
from lgi_dictco.entropy import TOTAL, FrequencyTable, decode_stream, encode_stream, unzigzag, zigzag


def test_bitio_round_trip():
    bw = BitWriter()
    bw.write(5, 3)
    bw.write_ue(0)
    bw.write_ue(1000)
    bw.write_se(-7)
    bw.write_array(np.array([1, 0, 255, 3]), np.array([1, 4, 8, 2]))
    br = BitReader(bw.getvalue())
    assert br.read(3) == 5 and br.read_ue() == 0 and br.read_ue() == 1000 and br.read_se() == -7
    assert br.read_array(np.array([1, 4, 8, 2])).tolist() == [1, 0, 255, 3]
    with pytest.raises(LgiFormatError, match="truncated"):
        br.read(16)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64), st.integers(0, 120))
def test_many_exp_golomb_codes_read_as_one_at_a_time(data, n):
    """read_se_many is read_se n times: same values, same position, same error on any bytes."""
    one, many = BitReader(data), BitReader(data)
    expected, error = [], None
    try:
        for _ in range(n):
            expected.append(one.read_se())
    except LgiFormatError as exc:
        error = "longer than" if "longer than" in str(exc) else "truncated"
    if error is None:
        assert many.read_se_many(n) == expected and many.remaining == one.remaining
    else:
        with pytest.raises(LgiFormatError, match=error):
            many.read_se_many(n)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=48), st.lists(st.integers(0, 62), max_size=40))
def test_read_array_reads_fields_one_at_a_time(data, widths):
    """read_array is read(w) for each width w in turn: same values, same position, same refusal."""
    one, many = BitReader(data), BitReader(data)
    if sum(widths) > 8 * len(data):
        with pytest.raises(LgiFormatError, match="truncated"):
            many.read_array(np.array(widths))
        return
    expected = [one.read(w) for w in widths]
    assert many.read_array(np.array(widths, dtype=np.int64)).tolist() == expected
    assert many.remaining == one.remaining


def test_varint_limits():
    for v in (0, 1, 127, 128, 2**35):
        assert read_varint(write_varint(v), 0, "x") == (v, len(write_varint(v)))
    with pytest.raises(LgiFormatError, match="limit"):
        read_varint(write_varint(1000), 0, "x", limit=999)
    with pytest.raises(LgiFormatError, match="truncated"):
        read_varint(b"\x80\x80", 0, "x")


def test_frequencies_are_exact_integers():
    table = FrequencyTable.from_symbols(np.array([0, 0, 0, 1, 5, 5]), 8)
    f = table.frequencies()
    assert sum(f) == TOTAL - 1 and all(isinstance(x, int) for x in f)
    assert [x > 0 for x in f] == [True, True, False, False, False, True, False, False]
    assert f[0] > f[5] > f[1]
    cdf = table.cdf()
    assert len(cdf) == 11 and cdf[-1] == cdf[-2] == TOTAL  # escape symbol has zero width
    assert cdf[-2] - cdf[-3] == 1  # the guard symbol
    lone = FrequencyTable.from_symbols(np.zeros(5, dtype=int), 1)
    assert lone.frequencies() == [TOTAL - 1]  # fits compressai's 16-bit frequencies


@pytest.mark.parametrize("alphabet", [None, 2, 64, 4096])
def test_round_trip_small_and_empty(alphabet):
    rng = np.random.default_rng(1)
    hi = alphabet or 10**9
    for n in (0, 1, 7, 500):
        s = rng.integers(0, min(hi, 10**9), size=n)
        data = encode_stream(s, alphabet)
        assert np.array_equal(decode_stream(data, n), s)


def test_sizes_are_near_ideal():
    rng = np.random.default_rng(0)
    deltas = rng.geometric(1 / 100, size=20000) - 1
    bits = len(encode_stream(deltas)) * 8 / deltas.size
    assert bits < np.log2(np.e * 100) + 0.15  # geometric entropy ≈ log2(e·mean)
    p = 1 / np.arange(1, 257) ** 0.9
    idx = rng.choice(256, size=20000, p=p / p.sum())
    counts = np.bincount(idx, minlength=256)
    pe = counts[counts > 0] / idx.size
    entropy = -(pe * np.log2(pe)).sum()
    bits = len(encode_stream(idx, 256)) * 8 / idx.size
    assert entropy < bits < entropy + 0.2


def test_bucketed_handles_powers_of_two_exactly():
    v = np.array([0, 1, 2, 3, 4, 7, 8, 2**20 - 1, 2**20, 2**47, 2**48 - 1])
    assert np.array_equal(decode_stream(encode_stream(v), v.size), v)


def test_zigzag():
    v = np.array([0, -1, 1, -2, 2, -1000])
    assert zigzag(v).tolist() == [0, 1, 2, 3, 4, 1999]
    assert np.array_equal(unzigzag(zigzag(v)), v)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        encode_stream(np.array([-1]))
    with pytest.raises(ValueError):
        encode_stream(np.array([5]), 5)


def test_truncations_raise_format_error():
    s = np.random.default_rng(3).integers(0, 300, size=400)
    data = encode_stream(s)
    for cut in range(0, len(data) - 1, max(1, len(data) // 40)):
        with pytest.raises(LgiFormatError):
            decode_stream(data[:cut], s.size)
    with pytest.raises(LgiFormatError, match="symbols exceed"):
        decode_stream(data, 10**9)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 3000))
def test_garbage_never_crashes(blob, n):
    """Any bytes: either a clean LgiFormatError or n values within bounds, never a crash."""
    try:
        out = decode_stream(blob, n, max_value=10**6)
    except LgiFormatError:
        return
    assert out.shape == (n,) and (out >= 0).all() and (out <= 10**6).all()


def _forged_bucketed(bit_length: int, n: int = 3) -> bytes:
    """A well-formed bucketed stream whose n values all claim ``bit_length`` bits, all raw bits set."""
    from lgi_dictco.bitio import write_varint as varint
    from lgi_dictco.entropy import KIND_BUCKETED, _rans_encode

    codes = [0] * bit_length + [9]  # only symbol ``bit_length`` occurs
    table = FrequencyTable(tuple(codes))
    bw = BitWriter()
    table.write(bw)
    model = bw.getvalue()
    payload = _rans_encode(np.full(n, bit_length, dtype=np.int64), table)
    raw = bytes([0xFF]) * (-(-n * (bit_length - 1) // 8))
    return bytes([KIND_BUCKETED]) + varint(len(model)) + model + varint(len(payload)) + payload + raw


def test_bucketed_streams_at_the_48_bit_limit_decode():
    out = decode_stream(_forged_bucketed(48), 3, max_value=1 << 48)
    assert out.tolist() == [(1 << 48) - 1] * 3
    values = np.array([0, 1, (1 << 48) - 1, 12345])
    assert decode_stream(encode_stream(values), 4).tolist() == values.tolist()


@pytest.mark.parametrize("bit_length", [49, 63, 64, 65, 200])
def test_bit_lengths_beyond_48_are_refused_before_any_shift(bit_length):
    """A 64-bit length used to wrap to a negative int64 (an index of -1, a position of -3.6e16)."""
    with pytest.raises(LgiFormatError, match=f"claims {bit_length} bits, the format allows at most 48"):
        decode_stream(_forged_bucketed(bit_length), 3, max_value=1 << 62)


def test_bit_reader_refuses_fields_that_overflow_int64():
    with pytest.raises(LgiFormatError, match="does not fit in 62 bits"):
        BitReader(bytes(16), "raw").read_array(np.array([63]))
    assert BitReader(b"\xff" * 8, "raw").read_array(np.array([62])).tolist() == [(1 << 62) - 1]


def test_the_rans_coder_loads_without_the_rest_of_compressai():
    """compressai's __init__ imports every model and dataset (10+ s on 2 cores); .lgi coding needs only ans."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from lgi_dictco.entropy import FrequencyTable, decode_stream, encode_stream\n"
            "import numpy as np\n"
            "v = np.array([0, 1, 1, 2, 5, 1, 0], dtype=np.int64)\n"
            "assert (decode_stream(encode_stream(v), len(v)) == v).all()\n"
            "print('compressai' in sys.modules, 'compressai.ans' in sys.modules)\n"
            "from lgi_dictco._compressai import ans\n"
            "import lgi_dictco.dcae\n"
            "print('compressai' in sys.modules, 'torch' in sys.modules)\n"
            "from lgi_dictco.dcae import DCAE\n"
            "import compressai\n"
            "from compressai.ans import RansDecoder\n"
            "print(compressai.ans is ans, RansDecoder is ans.RansDecoder)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    # the .lgi coder: ans alone; `import lgi_dictco.dcae`: still neither compressai nor torch (its names
    # load on first use); the model: all of compressai, sharing the one ans module
    assert out == ["False", "True", "False", "False", "True", "True"]
