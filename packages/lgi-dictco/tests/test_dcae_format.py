"""The .dcae format treats its input as hostile: truncation, corruption, absurd sizes, foreign files."""

from __future__ import annotations

import struct
import tracemalloc
import zlib

import pytest
import torch

from lgi_dictco.dcae import build_model, decode, encode
from lgi_dictco.dcae.format import HEADER_SIZE, MAX_PIXELS, DcaeHeader, latent_shapes, pack, unpack
from lgi_dictco.errors import LgiFormatError

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def _header(h=29, w=45, **changes):
    y, z = latent_shapes(h, w)
    fields = dict(
        model_id=3,
        fingerprint=0xDEADBEEF,
        lmbda=0.0067,
        metric="mse",
        height=h,
        width=w,
        y_shape=y,
        z_shape=z,
    )
    fields.update(changes)
    return DcaeHeader(**fields)


def _reseal(data: bytes, offset: int, fmt: str, value) -> bytes:
    """Change a header field and recompute the header CRC, as a foreign or newer encoder would."""
    b = bytearray(data)
    struct.pack_into(fmt, b, offset, value)
    struct.pack_into("<I", b, 48, zlib.crc32(bytes(b[:48])))
    return bytes(b)


GOOD = pack(_header(), b"y-payload-bytes", b"zz")


def test_round_trip_and_layout():
    header, y, z = unpack(GOOD)
    assert header == _header() and (y, z) == (b"y-payload-bytes", b"zz")
    assert GOOD[:4] == b"DCAE" and GOOD[4] == 1 and len(GOOD) == HEADER_SIZE + 8 + 2 + 8 + 15
    assert struct.unpack_from("<HIf", GOOD, 6)[:2] == (3, 0xDEADBEEF)


def test_sizes_beyond_16_bits():
    h, w = 70_001, 3
    data = pack(_header(h, w), b"y", b"z")
    header, _, _ = unpack(data)
    assert (header.height, header.width, header.y_shape, header.z_shape) == (h, w, (4376, 1), (1094, 1))


def test_every_truncation_is_rejected():
    for n in range(len(GOOD)):
        with pytest.raises(LgiFormatError):
            unpack(GOOD[:n])


def test_every_single_byte_corruption_is_rejected():
    for i in range(len(GOOD)):
        bad = bytearray(GOOD)
        bad[i] ^= 0xFF
        with pytest.raises(LgiFormatError):
            unpack(bytes(bad))


def test_trailing_bytes_are_rejected():
    with pytest.raises(LgiFormatError, match="unexpected bytes after the last chunk"):
        unpack(GOOD + b"\0")


@pytest.mark.parametrize(
    "data, match",
    [
        (b"", "not a .dcae file"),
        (b"\x89PNG\r\n\x1a\n" + bytes(60), "not a .dcae file"),
        (_reseal(GOOD, 4, "<B", 2), "unsupported .dcae version 2"),
        (_reseal(GOOD, 5, "<B", 1), "reserved"),
        (_reseal(GOOD, 18, "<B", 7), "reserved"),
        (_reseal(GOOD, 16, "<B", 9), "unknown metric"),
        (_reseal(GOOD, 12, "<f", float("nan")), "invalid λ"),
        (_reseal(GOOD, 20, "<I", 0), "empty image"),
        (_reseal(GOOD, 28, "<I", 9), "do not match the image"),
        (_reseal(GOOD, 44, "<B", 3), "3 chunks"),
        (GOOD[:52] + struct.pack("<II", 1 << 31, 0) + GOOD[60:], "declares 2147483648 bytes"),
    ],
)
def test_malformed_headers_name_the_problem(data, match):
    with pytest.raises(LgiFormatError, match=match):
        unpack(data)


def test_absurd_dimensions_fail_fast_without_allocating():
    data = _reseal(_reseal(GOOD, 20, "<I", 0xFFFFFFFF), 24, "<I", 0xFFFFFFFF)
    tracemalloc.start()
    try:
        with pytest.raises(LgiFormatError, match="above the limit"):
            unpack(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # refused from the header: nothing of the 4e9-pixel latents is allocated
    big = pack(_header(20_000, 20_000), b"y", b"z")  # 4e8 pixels > 2**28
    with pytest.raises(LgiFormatError, match="pass a larger max_pixels"):
        unpack(big)
    assert unpack(big, max_pixels=20_000 * 20_000)[0].height == 20_000
    assert MAX_PIXELS == 1 << 28


def test_pack_validates_its_arguments():
    with pytest.raises(ValueError, match="latent shapes"):
        pack(_header(y_shape=(1, 1)), b"", b"")
    with pytest.raises(ValueError, match="metric"):
        pack(_header(metric="psnr"), b"", b"")
    with pytest.raises(ValueError, match="16 bits"):
        pack(_header(model_id=70_000), b"", b"")


def test_decode_rejects_unknown_model_ids():
    torch.manual_seed(0)
    model = build_model("dcae-tiny").eval()
    model.update()
    data = _reseal(encode(model, torch.rand(3, 16, 16)), 6, "<H", 999)
    with pytest.raises(LgiFormatError, match="unknown model id 999"):
        decode(model, data)


def test_decoder_survives_forged_payloads_with_valid_crcs():
    """A file whose CRCs are right but whose payloads are garbage never crashes and never varies.

    Payloads that cannot be rANS streams (not whole 32-bit words, or shorter than the coder state) are
    refused; word-aligned garbage either decodes to the same image on every run or is refused.
    """
    torch.manual_seed(1)
    model = build_model("dcae-tiny").eval()
    model.update()
    h, w = 40, 72
    header = _header(h, w, fingerprint=model.fingerprint())
    gen = torch.Generator().manual_seed(2)
    for n_y, n_z in [(0, 0), (3, 1), (8, 6), (200, 50)]:
        y = bytes(torch.randint(0, 256, (n_y,), generator=gen, dtype=torch.uint8).tolist())
        z = bytes(torch.randint(0, 256, (n_z,), generator=gen, dtype=torch.uint8).tolist())
        with pytest.raises(LgiFormatError, match="rANS stream is a whole number of 32-bit words"):
            decode(model, pack(header, y, z))
    for n_y, n_z in [(8, 8), (200, 52), (4096, 64)]:
        y = bytes(torch.randint(0, 256, (n_y,), generator=gen, dtype=torch.uint8).tolist())
        z = bytes(torch.randint(0, 256, (n_z,), generator=gen, dtype=torch.uint8).tolist())
        outcomes = []
        for _ in range(2):
            try:
                outcomes.append(decode(model, pack(header, y, z))[0])
            except LgiFormatError as exc:
                outcomes.append(str(exc))
        if isinstance(outcomes[0], str):
            assert outcomes[0] == outcomes[1]
        else:
            assert outcomes[0].shape == (1, 3, h, w) and torch.isfinite(outcomes[0]).all()
            assert torch.equal(outcomes[0], outcomes[1])
