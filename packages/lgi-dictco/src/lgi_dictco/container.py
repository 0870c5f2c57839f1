"""The chunked container shared by LGI bitstreams: magic, version, then length- and CRC-framed chunks.

Layout (docs/format.md)::

    magic (8 bytes) | version major (u8) | version minor (u8) | chunk* | 'END ' chunk
    chunk = type (4 ASCII bytes) | length (u32 little-endian) | payload | CRC32 of type+payload (u32 LE)

Chunk types follow PNG's rule: an upper-case first letter is critical (a reader that does not know
it must refuse the file), a lower-case one is ancillary (may be skipped).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable

from lgi_dictco.errors import LgiFormatError

_CHUNK_HEAD = struct.Struct("<4sI")
_CRC = struct.Struct("<I")


def write_container(magic: bytes, version: tuple[int, int], chunks: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Frame ``chunks`` (type, payload) behind ``magic`` and ``version``; appends the END chunk."""
    out = bytearray(magic)
    out += bytes(version)
    for ctype, payload in [*chunks, (b"END ", b"")]:
        if len(ctype) != 4 or not ctype.isascii():
            raise ValueError(f"chunk type must be 4 ASCII bytes, got {ctype!r}")
        out += _CHUNK_HEAD.pack(ctype, len(payload))
        out += payload
        out += _CRC.pack(zlib.crc32(ctype + payload) & 0xFFFFFFFF)
    return bytes(out)


def read_container(
    data: bytes,
    magic: bytes,
    major: int,
    known: set[bytes],
    what: str,
    max_chunk: int = 1 << 30,
) -> tuple[tuple[int, int], dict[bytes, bytes]]:
    """Parse and verify a container; returns (version, {type: payload}) of the known chunks.

    Raises:
        LgiFormatError: wrong magic, unsupported major version, truncation, a CRC mismatch, a
            duplicated or unknown critical chunk, or data after the END chunk.
    """
    if len(data) < len(magic) + 2:
        raise LgiFormatError(f"not a {what} file: only {len(data)} bytes")
    if data[:len(magic)] != magic:
        raise LgiFormatError(f"not a {what} file: the magic bytes are {data[:len(magic)]!r}, "
                             f"expected {magic!r}")
    version = (data[len(magic)], data[len(magic) + 1])
    if version[0] != major:
        raise LgiFormatError(f"{what} format version {version[0]}.{version[1]} is not supported by this "
                             f"decoder (it reads {major}.x); upgrade lgi-dictco")
    pos = len(magic) + 2
    chunks: dict[bytes, bytes] = {}
    while True:
        if pos + _CHUNK_HEAD.size > len(data):
            raise LgiFormatError(f"{what} file is truncated at byte {pos}: a chunk header is incomplete "
                                 "(the END chunk was never reached)")
        ctype, length = _CHUNK_HEAD.unpack_from(data, pos)
        name = ctype.decode("ascii", "replace")
        if length > max_chunk:
            raise LgiFormatError(f"{what} chunk {name!r} at byte {pos} claims {length} bytes, above the "
                                 f"limit {max_chunk}")
        end = pos + _CHUNK_HEAD.size + length
        if end + _CRC.size > len(data):
            raise LgiFormatError(f"{what} file is truncated: chunk {name!r} at byte {pos} needs {length} "
                                 f"bytes, {max(0, len(data) - pos - _CHUNK_HEAD.size - _CRC.size)} remain")
        payload = data[pos + _CHUNK_HEAD.size:end]
        (crc,) = _CRC.unpack_from(data, end)
        if crc != zlib.crc32(ctype + payload) & 0xFFFFFFFF:
            raise LgiFormatError(f"{what} file is corrupted: CRC mismatch in chunk {name!r} at byte {pos}")
        pos = end + _CRC.size
        if ctype == b"END ":
            break
        if ctype in chunks:
            raise LgiFormatError(f"{what} file has chunk {name!r} twice")
        if ctype in known:
            chunks[ctype] = bytes(payload)
        elif ctype[:1].isupper():
            raise LgiFormatError(f"{what} file has an unknown critical chunk {name!r}: it was written by a "
                                 "newer encoder; upgrade lgi-dictco")
    if pos != len(data):
        raise LgiFormatError(f"{what} file has {len(data) - pos} unexpected bytes after the END chunk")
    return version, chunks


def chunk_sizes(data: bytes, magic: bytes) -> list[tuple[str, int]]:
    """(type, payload length) of every chunk, for ``lgi info``; assumes ``read_container`` succeeded."""
    pos = len(magic) + 2
    out = []
    while pos + _CHUNK_HEAD.size <= len(data):
        ctype, length = _CHUNK_HEAD.unpack_from(data, pos)
        out.append((ctype.decode("ascii", "replace"), length))
        pos += _CHUNK_HEAD.size + length + _CRC.size
        if ctype == b"END ":
            break
    return out
