"""The .lgi container and Gaussian payload: exact round trips and a decoder that treats input as hostile."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lgi_dictco import LgiFormatError
from lgi_dictco.gauss.decoder import dequantize
from lgi_dictco.gauss.format import (
    MAGIC,
    GroupCoding,
    LgiHeader,
    LgiPayload,
    decode_lgi,
    encode_lgi,
    morton_decode,
    morton_encode,
)
from lgi_dictco.gauss.quant import params_to_shape_features, shape_features_to_params


def make_payload(n=300, k_shape=16, k_color=32, channels=3, seed=0, own_fraction=0.1,
                 color_space="rgb", drops=(0,)) -> LgiPayload:
    """A random payload; ``drops``: the position bits each precision class drops (one entry: no classes)."""
    rng = np.random.default_rng(seed)
    bx, by = 11, 10
    nk = len(drops)
    classes = rng.integers(0, nk, n)

    def group(dims, k, max_levels):
        lo = rng.uniform(-3, 0, dims).astype(np.float32)
        step = rng.uniform(0.005, 0.05, dims).astype(np.float32)
        levels = rng.integers(1, max_levels + 1, (nk, dims))
        exps = rng.integers(-4, 5, nk) if nk > 1 else None
        cb = rng.integers(0, levels[0][None, :], size=(k, dims))
        if k:
            idx = rng.integers(0, k, size=n)
            idx[rng.random(n) < own_fraction] = k
            own = idx == k
        else:
            idx, own = None, np.ones(n, bool)
        scalars = rng.integers(0, levels[classes[own]])
        return GroupCoding(lo, step, levels if nk > 1 else levels[0], cb, idx, scalars, exps)

    header = LgiHeader(width=700, height=300, channels=channels, num_gaussians=n, pos_bits=(bx, by),
                       color_space=color_space, class_drop=tuple(drops))
    d = np.asarray(drops)[classes]
    pos = np.stack([rng.integers(0, 1 << (bx - d)), rng.integers(0, 1 << (by - d))], axis=1)
    return LgiPayload(header, pos, group(3, k_shape, 1000), group(channels, k_color, 64),
                      classes=classes if nk > 1 else None)


def _as_set(p: LgiPayload) -> list[tuple]:
    """Order-free view of a payload: one tuple of dequantized values per Gaussian."""
    d = dequantize(p)
    rows = np.concatenate([d["means"], d["scales"], d["rotations"][:, None], d["colors"]], axis=1)
    return sorted(map(tuple, rows.tolist()))


def test_morton_round_trip_and_locality():
    rng = np.random.default_rng(0)
    for bx, by in ((10, 10), (12, 9), (7, 11)):
        qx, qy = rng.integers(0, 1 << bx, 1000), rng.integers(0, 1 << by, 1000)
        code = morton_encode(qx, qy, bx, by)
        assert code.max() < 1 << (bx + by)
        rx, ry = morton_decode(code, bx, by)
        assert np.array_equal(rx, qx) and np.array_equal(ry, qy)
    assert morton_encode(np.array([1, 0, 1]), np.array([0, 1, 1]), 4, 4).tolist() == [1, 2, 3]


def test_shape_features_round_trip():
    rng = np.random.default_rng(0)
    scales = np.exp(rng.uniform(-7, -2, size=(200, 2)))
    rot = rng.uniform(-4, 4, size=200)
    s2, r2 = shape_features_to_params(params_to_shape_features(scales, rot))
    # Same covariance (the parameterization is not unique: axes may swap, angles wrap by pi).
    def cov(s, r):
        c, si = np.cos(r), np.sin(r)
        R = np.stack([np.stack([c, -si], -1), np.stack([si, c], -1)], -2)
        return R @ (np.eye(2) * (s[:, None, :] ** 2)) @ R.transpose(0, 2, 1)
    np.testing.assert_allclose(cov(s2, r2), cov(scales, rot), rtol=2e-4, atol=1e-12)


@pytest.mark.parametrize("k_shape,k_color,own", [(16, 32, 0.1), (0, 0, 0.0), (64, 0, 0.0), (5, 9, 1.0)])
def test_round_trip_is_exact(k_shape, k_color, own):
    p = make_payload(k_shape=k_shape, k_color=k_color, own_fraction=own)
    data = encode_lgi(p)
    q = decode_lgi(data)
    assert q.header == p.header
    assert _as_set(q) == _as_set(p)
    # Decoded order is the Z-curve.
    codes = morton_encode(q.positions[:, 0], q.positions[:, 1], *q.header.pos_bits)
    assert (np.diff(codes) >= 0).all()
    # Encoding the decoded payload reproduces the bytes (canonical form).
    assert encode_lgi(q) == data


@pytest.mark.parametrize("drops,k_shape", [((3, 2, 1, 0), 0), ((0, 0), 8), ((1, 4, 0), 0)])
def test_precision_classes_round_trip(drops, k_shape):
    """Per-class position grids and steps survive coding exactly, and values use their class's step."""
    p = make_payload(n=400, k_shape=k_shape, k_color=0, own_fraction=0.2, drops=drops, color_space="opp")
    data = encode_lgi(p)
    q = decode_lgi(data)
    assert q.header == p.header
    assert _as_set(q) == _as_set(p)
    assert encode_lgi(q) == data
    # The coarse-position grid of a class is its own: a Gaussian of class c sits at a cell centre of a
    # 2**(bits - drop_c) grid.
    means = dequantize(q)["means"]
    d = np.asarray(drops)[q.class_ids()]
    cells = means[:, 0] * (1 << (11 - d)) - 0.5
    np.testing.assert_array_equal(cells, np.round(cells))
    # Colour values are lo + q·step·2^(e/2) for their own class (float32, exact).
    from lgi_dictco.gauss.quant import class_multiplier

    g = q.color
    cls = q.class_ids()
    expect = np.stack([g.lo + g.scalars[i].astype(np.float32) * (g.step * class_multiplier(int(g.exps[cls[i]])))
                       for i in range(5)])
    np.testing.assert_array_equal(g.dequantize(cls)[:5], expect.astype(np.float32))
    assert class_multiplier(2) == np.float32(2) and class_multiplier(-3) == np.float32(np.sqrt(2) / 4)


def test_version_1_files_are_refused_by_name():
    data = bytearray(encode_lgi(make_payload()))
    data[8:10] = b"\x01\x00"
    with pytest.raises(LgiFormatError, match="version 1.0 is an older format"):
        decode_lgi(bytes(data))


def test_huge_opponent_values_fail_after_the_colour_transform():
    """A value finite in the opponent space can overflow in the matrix product: refused, not rendered."""
    p = make_payload(n=20, k_shape=0, k_color=0, color_space="opp")
    p.color.lo[:] = np.float32(3e38)
    p.color.step[:] = np.float32(1e30)
    p.color.levels = np.ones(3, np.int64)
    p.color.scalars[:] = 0
    q = decode_lgi(encode_lgi(p))
    with pytest.raises(LgiFormatError, match="colour values are not finite"):
        dequantize(q)


def test_deterministic_bytes_and_single_channel_and_empty():
    p = make_payload(seed=4)
    assert encode_lgi(p) == encode_lgi(make_payload(seed=4))
    g = make_payload(channels=1, n=50, color_space="gray")
    assert _as_set(decode_lgi(encode_lgi(g))) == _as_set(g)
    o = make_payload(n=80, color_space="opp")
    back = decode_lgi(encode_lgi(o))
    assert back.header.color_space == "opp" and _as_set(back) == _as_set(o)
    from lgi_dictco.gauss.quant import OPPONENT

    np.testing.assert_allclose(OPPONENT @ OPPONENT.T, np.eye(3), atol=1e-6)
    np.testing.assert_allclose(dequantize(back)["colors"], back.color.dequantize() @ OPPONENT, rtol=1e-6)
    e = make_payload(n=0, k_shape=0, k_color=0)
    q = decode_lgi(encode_lgi(e))
    assert q.header.num_gaussians == 0 and dequantize(q)["means"].shape == (0, 2)


def test_encoder_validates():
    p = make_payload()
    p.positions[0, 0] = 1 << 11
    with pytest.raises(ValueError, match="grid"):
        encode_lgi(p)
    p = make_payload()
    p.color.scalars[0, 0] = p.color.levels[0]
    with pytest.raises(ValueError, match="levels"):
        encode_lgi(p)


def _rechunk(data: bytes, ctype: bytes, new_payload: bytes) -> bytes:
    """Replace one chunk's payload, with a valid CRC: for hostile-but-well-framed inputs."""
    pos, out = len(MAGIC) + 2, bytearray(data[:len(MAGIC) + 2])
    while pos < len(data):
        t, n = struct.unpack_from("<4sI", data, pos)
        body = data[pos + 8:pos + 8 + n]
        if t == ctype:
            body = new_payload
        out += struct.pack("<4sI", t, len(body)) + body + struct.pack("<I", zlib.crc32(t + body))
        pos += 12 + n
    return bytes(out)


def test_rejects_bad_files_with_clear_messages():
    data = encode_lgi(make_payload())
    with pytest.raises(LgiFormatError, match="magic"):
        decode_lgi(b"\x89PNG\r\n\x1a\n" + data[8:])
    with pytest.raises(LgiFormatError, match="version"):
        decode_lgi(data[:8] + b"\x07\x00" + data[10:])
    with pytest.raises(LgiFormatError, match="only"):
        decode_lgi(data[:5])
    for cut in (12, 30, len(data) // 2, len(data) - 1):
        with pytest.raises(LgiFormatError, match="truncated"):
            decode_lgi(data[:cut])
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    with pytest.raises(LgiFormatError, match="CRC"):
        decode_lgi(bytes(flipped))
    with pytest.raises(LgiFormatError, match="after the END"):
        decode_lgi(data + b"x")


def test_absurd_dimensions_rejected_before_allocation():
    from lgi_dictco.bitio import write_varint

    data = encode_lgi(make_payload())
    huge = b"".join(write_varint(v) for v in (60000, 60000, 3, 0, 0, 10, 300, 11, 10))
    with pytest.raises(LgiFormatError, match="outside the decoder limits"):
        decode_lgi(_rechunk(data, b"HEAD", huge + b"\x00" * 64))
    many = b"".join(write_varint(v) for v in (64, 64, 3, 0, 0, 10, 10**9, 11, 10))
    with pytest.raises(LgiFormatError, match="exceed the decoder limit"):
        decode_lgi(_rechunk(data, b"HEAD", many + b"\x00" * 64))
    classes = b"".join(write_varint(v) for v in (64, 64, 3, 0, 0, 10, 10, 11, 10, 9))
    with pytest.raises(LgiFormatError, match="precision classes"):
        decode_lgi(_rechunk(data, b"HEAD", classes + b"\x00" * 64))
    drop = b"".join(write_varint(v) for v in (64, 64, 3, 0, 0, 10, 10, 11, 10, 2, 0, 10))
    with pytest.raises(LgiFormatError, match="drops 10 position bits"):
        decode_lgi(_rechunk(data, b"HEAD", drop + b"\x00" * 64))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_flipped_or_rewritten_bytes_never_crash(data):
    """Random byte edits (CRC fixed up so they reach the parsers): LgiFormatError or a valid payload."""
    blob = bytearray(encode_lgi(make_payload(n=60, drops=data.draw(st.sampled_from([(0,), (2, 0, 1)])))))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(10, len(blob) - 1))
        blob[i] = data.draw(st.integers(0, 255))
    # Recompute every CRC so the edit is seen by the chunk parsers, not just the CRC check.
    pos, fixed = 10, bytearray(blob[:10])
    try:
        while pos + 8 <= len(blob):
            t, n = struct.unpack_from("<4sI", blob, pos)
            body = bytes(blob[pos + 8:pos + 8 + n])
            fixed += struct.pack("<4sI", t, n) + body + struct.pack("<I", zlib.crc32(t + body))
            pos += 12 + n
            if t == b"END ":
                break
    except struct.error:
        pass
    try:
        q = decode_lgi(bytes(fixed))
        d = dequantize(q)
    except LgiFormatError:
        return
    assert all(np.isfinite(v).all() for v in d.values())
    assert d["means"].shape[0] == q.header.num_gaussians <= 2**21
