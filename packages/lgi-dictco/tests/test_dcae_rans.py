"""Bounded rANS decoding: equal to compressai on every stream it writes, safe and deterministic on forged ones."""

from __future__ import annotations

import numpy as np
import pytest

from lgi_dictco._compressai import ans
from lgi_dictco.dcae import decode
from lgi_dictco.dcae._rans import BoundedRansDecoder, _PythonRans
from lgi_dictco.dcae.format import DcaeHeader, latent_shapes, pack
from lgi_dictco.dcae.registry import model_id, name_of_config
from lgi_dictco.errors import LgiFormatError


@pytest.fixture(scope="module")
def model(tiny_model):
    return tiny_model


@pytest.fixture(scope="module")
def tables(model):
    return model._tables()


def _encode(values, indexes, tables) -> bytes:
    cdf, lengths, offsets = tables
    enc = ans.BufferedRansEncoder()
    enc.encode_with_indexes(values, indexes, cdf, lengths, offsets)
    return enc.flush()


def _symbols(tables, n, escapes, seed):
    """Values inside each CDF's range, plus ``escapes`` far outside it (coded in bypass mode)."""
    _, lengths, offsets = tables
    rng = np.random.default_rng(seed)
    indexes = rng.integers(0, len(lengths), n)
    values = [int(offsets[i] + rng.integers(0, lengths[i] - 2)) for i in indexes]
    for k, v in zip(rng.choice(n, escapes, replace=False), [-(1 << 20), 5000, -300, 1 << 24, 77, -1]):
        values[k] = int(v)
    return values, indexes.tolist()


def _header_for(model, size):
    y, z = latent_shapes(size, size)
    return DcaeHeader(model_id(name_of_config(model.config)), model.fingerprint(), 0.0, "mse", size, size, y, z)


@pytest.mark.parametrize("escapes", [0, 6])
def test_decoding_equals_what_compressai_wrote(tables, escapes):
    values, indexes = _symbols(tables, 3000, escapes, seed=escapes)
    stream = _encode(values, indexes, tables)
    decoder = BoundedRansDecoder(stream, len(values), "test")
    # Three calls, as the y latent is decoded slice by slice; an escape in a later call replays the first.
    got = [v for part in (slice(0, 1000), slice(1000, 2000), slice(2000, 3000))
           for v in decoder.decode(indexes[part], *tables)]
    assert got == values
    assert (decoder._slow is None) == (escapes == 0)  # the fast path serves streams without escapes
    assert _PythonRans(stream, "test").decode(indexes, *tables) == values


def test_the_python_twin_equals_compressai_on_any_word_stream(tables):
    """On arbitrary streams whose escapes stay within 8 groups, both decoders agree symbol for symbol."""
    rng = np.random.default_rng(3)
    agreed = 0
    for _ in range(40):
        stream = rng.integers(0, 256, 4 * int(rng.integers(2, 40)), dtype=np.uint8).tobytes()
        indexes = rng.integers(0, len(tables[1]), 64).tolist()
        try:
            ours = _PythonRans(stream, "test").decode(indexes, *tables)
        except LgiFormatError:
            continue  # a bypass longer than compressai's encoder writes: compressai would overrun here
        # Padding keeps compressai's reads inside its buffer, as our decoder reads zeros past the end.
        theirs = ans.RansDecoder().decode_with_indexes(stream + bytes(4 * 64 * 12), indexes, *tables)
        assert ours == theirs
        agreed += 1
    assert agreed >= 10


@pytest.mark.parametrize("stream", [b"", b"\x01" * 3, b"\x01" * 6, b"\x01" * 9])
def test_streams_that_are_not_whole_words_are_refused(stream):
    with pytest.raises(LgiFormatError, match="whole number of 32-bit words"):
        BoundedRansDecoder(stream, 10, "test")


def test_forged_streams_decode_deterministically_without_reading_past_the_end(tables):
    """Many symbols from a few bytes: every read beyond the stream is a zero, the same on every run."""
    rng = np.random.default_rng(4)
    for _ in range(20):
        stream = rng.integers(0, 256, 4 * int(rng.integers(2, 6)), dtype=np.uint8).tobytes()
        indexes = rng.integers(0, len(tables[1]), 50_000).tolist()
        runs = []
        for _ in range(2):
            try:
                runs.append(BoundedRansDecoder(stream, len(indexes), "test").decode(indexes, *tables))
            except LgiFormatError as exc:
                runs.append(str(exc))
        assert runs[0] == runs[1]


def test_the_68_byte_file_that_crashed_compressai_fails_with_one_error(model):
    """1024×1024 header, valid CRCs, empty z and y chunks: compressai's decoder read past its buffer."""
    data = pack(_header_for(model, 1024), b"", b"")
    assert len(data) == 68
    ran = []
    hooks = [m.register_forward_pre_hook(lambda module, args: ran.append(module))
             for m in (model.h_s_scales, model.h_s_means, model.g_s)]
    try:
        with pytest.raises(LgiFormatError, match=r"\.dcae z chunk: a rANS stream"):
            decode(model, data)
    finally:
        for h in hooks:
            h.remove()
    assert ran == []  # refused in the z stream, before any transform runs
    # 8-byte chunks: compressai's own EntropyBottleneck.decompress segfaults on this z stream (its bypass
    # mode reads a chain of 4-bit groups past the buffer); ours names the impossible escape.
    data = pack(_header_for(model, 1024), b"\x01" * 8, b"\x01" * 8)
    with pytest.raises(LgiFormatError, match="escaped value claims"):
        decode(model, data)



def test_lgi_dictco_decompress_refuses_the_file_before_loading_the_model(model, tmp_path, monkeypatch):
    from click.testing import CliRunner

    import lgi_dictco.cli as cli

    monkeypatch.setattr(cli, "_load", lambda *a: pytest.fail("the model was loaded for a forged file"))
    (tmp_path / "bad.dcae").write_bytes(pack(_header_for(model, 1024), b"", b""))
    res = CliRunner().invoke(cli.dictco, ["decompress", str(tmp_path / "bad.dcae"), "-o", str(tmp_path / "o.png"),
                                          "--checkpoint", str(tmp_path / "unused.pt")])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert res.output.strip().splitlines() == [
        f"Error: {tmp_path / 'bad.dcae'}: .dcae z chunk: a rANS stream is a whole number of 32-bit words holding "
        "at least the 8-byte coder state; this one has 0 bytes (truncated or forged file)"]
    assert not (tmp_path / "o.png").exists()
