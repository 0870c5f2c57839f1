"""Property-based fuzzing of .dcae decoding with forged headers and payloads whose CRCs are valid.

Random byte flips are caught by the CRCs; a forger recomputes them. Every example must end in one
``LgiFormatError`` or in an image of the declared size that is the same on every decode.
"""

from __future__ import annotations

import struct
import zlib

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lgi_dictco.dcae import decode
from lgi_dictco.dcae.format import DcaeHeader, latent_shapes, pack
from lgi_dictco.dcae.registry import model_id, name_of_config
from lgi_dictco.errors import LgiFormatError

_SETTINGS = settings(max_examples=20, deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def model(tiny_model):
    return tiny_model


def _outcome(model, data, max_pixels):
    try:
        image, _ = decode(model, data, max_pixels=max_pixels)
    except LgiFormatError as exc:
        return str(exc)
    return image


def _check(model, data, max_pixels=64 * 64):
    first, second = _outcome(model, data, max_pixels), _outcome(model, data, max_pixels)
    if isinstance(first, str):
        assert first == second
        return None
    assert isinstance(second, torch.Tensor) and torch.equal(first, second)
    assert torch.isfinite(first).all() and first.min() >= 0 and first.max() <= 1
    return first


@_SETTINGS
@given(h=st.integers(1, 64), w=st.integers(1, 64), y=st.binary(max_size=160), z=st.binary(max_size=48),
       word_aligned=st.booleans())
def test_forged_payloads_in_a_consistent_header(model, h, w, y, z, word_aligned):
    if word_aligned:  # what a forger who knows rANS streams are 32-bit words would write
        y, z = (s + bytes(max(8, -(-len(s) // 4) * 4) - len(s)) for s in (y, z))
    y_shape, z_shape = latent_shapes(h, w)
    header = DcaeHeader(model_id(name_of_config(model.config)), model.fingerprint(), 0.0, "mse", h, w,
                        y_shape, z_shape)
    image = _check(model, pack(header, y, z))
    if image is not None:
        assert image.shape == (1, 3, h, w)


_SIZE = st.one_of(st.integers(0, 70), st.integers(0, (1 << 32) - 1))


def _framed(payload: bytes) -> bytes:
    return struct.pack("<II", len(payload), zlib.crc32(payload)) + payload


@_SETTINGS
@given(h=_SIZE, w=_SIZE, latents=st.one_of(st.none(), st.tuples(*[_SIZE] * 4)),
       n_chunks=st.sampled_from([2, 2, 2, 0, 1, 3, 255]), metric=st.integers(0, 4),
       lmbda=st.floats(width=32), known_model=st.booleans(),
       chunks=st.one_of(st.binary(max_size=80), st.tuples(st.binary(max_size=40), st.binary(max_size=80))))
def test_forged_headers_with_a_valid_crc(model, h, w, latents, n_chunks, metric, lmbda, known_model, chunks):
    """Every header field forged (sizes up to 2**32 - 1, inconsistent latents, odd chunk counts)."""
    y_shape, z_shape = latent_shapes(max(h, 1), max(w, 1))
    yh, yw, zh, zw = latents if latents is not None else (*y_shape, *z_shape)
    ident = (model_id(name_of_config(model.config)), model.fingerprint()) if known_model else (999, 0)
    fixed = struct.pack("<4sBBHIfB3xIIIIIIB3x", b"DCAE", 1, 0, *ident, lmbda, metric, h, w, yh, yw, zh, zw,
                        n_chunks)
    body = chunks if isinstance(chunks, bytes) else _framed(chunks[1]) + _framed(chunks[0])
    _check(model, fixed + struct.pack("<I", zlib.crc32(fixed)) + body)
