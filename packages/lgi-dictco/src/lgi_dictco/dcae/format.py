"""The ``.dcae`` file: one image coded by a DCAE model. Pure Python (no torch): parsing is hostile-safe.

Layout (all integers little-endian; see docs/format.md):

=======  ====  ===============================================================
offset   size  field
=======  ====  ===============================================================
0        4     magic ``b"DCAE"``
4        1     format version (1)
5        1     flags (0; any other value is rejected)
6        2     model id (u16, frozen table in :mod:`lgi_dictco.dcae.registry`)
8        4     weights fingerprint (u32, CRC32 of the model's parameters)
12       4     λ the model was trained with (float32; 0 = unknown)
16       1     distortion metric (0 unknown, 1 MSE, 2 MS-SSIM)
17       3     reserved (zero)
20       4     image height H (u32)
24       4     image width W (u32)
28       8     latent y height, width (u32 each) = ⌈H/16⌉, ⌈W/16⌉
36       8     hyper-latent z height, width (u32 each) = ⌈y/4⌉
44       1     number of chunks (2)
45       3     reserved (zero)
48       4     CRC32 of bytes 0‥47
52       …     chunks, z first then y: length (u32), CRC32 of the payload (u32), payload
=======  ====  ===============================================================

Nothing may follow the last chunk.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass

from lgi_dictco.dcae.registry import model_name
from lgi_dictco.errors import LgiFormatError

MAGIC = b"DCAE"
VERSION = 1
METRICS = {0: "unknown", 1: "mse", 2: "ms-ssim"}
METRIC_CODES = {name: code for code, name in METRICS.items()}
#: Largest image a decoder accepts by default (pixels): 2**28, about 16384 × 16384.
MAX_PIXELS = 1 << 28

_HEADER = struct.Struct("<4sBBHIfB3xIIIIIIB3x")
_HEADER_CRC = struct.Struct("<I")
_CHUNK = struct.Struct("<II")
HEADER_SIZE = _HEADER.size + _HEADER_CRC.size  # 52
_NUM_CHUNKS = 2


@dataclass(frozen=True)
class DcaeHeader:
    """What a ``.dcae`` file says about its image and the model that coded it.

    Attributes:
        model_id: frozen model id (0: custom sizes).
        fingerprint: CRC32 of the model's parameters (:meth:`DCAE.fingerprint`).
        lmbda: λ the model was trained with (0.0 if unknown).
        metric: "mse", "ms-ssim" or "unknown".
        height, width: the image size.
        y_shape, z_shape: latent grid sizes (functions of height and width, stored to cross-check).
    """

    model_id: int
    fingerprint: int
    lmbda: float
    metric: str
    height: int
    width: int
    y_shape: tuple[int, int]
    z_shape: tuple[int, int]


def latent_shapes(height: int, width: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """(y, z) grid sizes of an image: y = ⌈size/16⌉, z = ⌈y/4⌉."""
    y = (-(-height // 16), -(-width // 16))
    return y, (-(-y[0] // 4), -(-y[1] // 4))


def pack(header: DcaeHeader, y_string: bytes, z_string: bytes) -> bytes:
    """Serialise a coded image.

    Raises:
        ValueError: a field is out of range or the shapes do not match the image size.
    """
    if header.metric not in METRIC_CODES:
        raise ValueError(f"metric must be one of {sorted(METRIC_CODES)}, got {header.metric!r}")
    if not (0 <= header.model_id < 1 << 16 and 0 <= header.fingerprint < 1 << 32):
        raise ValueError("model id must fit in 16 bits and the fingerprint in 32")
    if not (1 <= header.height < 1 << 32 and 1 <= header.width < 1 << 32):
        raise ValueError(f"image size {header.height}x{header.width} out of range")
    if (tuple(header.y_shape), tuple(header.z_shape)) != latent_shapes(header.height, header.width):
        raise ValueError("latent shapes do not match the image size")
    if not math.isfinite(header.lmbda) or header.lmbda < 0:
        raise ValueError(f"λ must be a finite number ≥ 0, got {header.lmbda}")
    fixed = _HEADER.pack(
        MAGIC,
        VERSION,
        0,
        header.model_id,
        header.fingerprint,
        header.lmbda,
        METRIC_CODES[header.metric],
        header.height,
        header.width,
        *header.y_shape,
        *header.z_shape,
        _NUM_CHUNKS,
    )
    parts = [fixed, _HEADER_CRC.pack(zlib.crc32(fixed))]
    for payload in (z_string, y_string):
        payload = bytes(payload)
        if len(payload) >= 1 << 32:
            raise ValueError("a chunk of 4 GiB or more does not fit the format")
        parts += [_CHUNK.pack(len(payload), zlib.crc32(payload)), payload]
    return b"".join(parts)


def unpack(data: bytes, max_pixels: int = MAX_PIXELS) -> tuple[DcaeHeader, bytes, bytes]:
    """Parse and validate a ``.dcae`` file without trusting anything in it.

    Args:
        data: the whole file.
        max_pixels: refuse images larger than this (before any allocation).

    Returns:
        (header, y_string, z_string).

    Raises:
        LgiFormatError: not a ``.dcae`` file, an unsupported version, a truncated or corrupted file, or
            an image beyond ``max_pixels``; the message says what and where.
    """
    data = bytes(data)
    if len(data) < 4 or data[:4] != MAGIC:
        raise LgiFormatError(f"not a .dcae file: it starts with {data[:4]!r}, expected {MAGIC!r}")
    if len(data) < HEADER_SIZE:
        raise LgiFormatError(f".dcae file truncated: {len(data)} bytes, the header alone needs {HEADER_SIZE}")
    fields = _HEADER.unpack_from(data, 0)
    _, version, flags, model_id, fingerprint, lmbda, metric, height, width, yh, yw, zh, zw, n_chunks = fields
    if version != VERSION:
        raise LgiFormatError(
            f"unsupported .dcae version {version}: this lgi-dictco reads version {VERSION}; "
            "upgrade lgi-dictco to read newer files"
        )
    (stored_crc,) = _HEADER_CRC.unpack_from(data, _HEADER.size)
    if zlib.crc32(data[: _HEADER.size]) != stored_crc:
        raise LgiFormatError(".dcae header corrupted: its CRC32 does not match (bytes 0-47)")
    if flags != 0 or any(data[17:20]) or any(data[45:48]):
        raise LgiFormatError(".dcae header has non-zero reserved bits: written by a newer or foreign encoder")
    if metric not in METRICS:
        raise LgiFormatError(f".dcae header: unknown metric code {metric}")
    if not math.isfinite(lmbda) or lmbda < 0:
        raise LgiFormatError(f".dcae header: invalid λ {lmbda}")
    if height < 1 or width < 1:
        raise LgiFormatError(f".dcae header: empty image {height}x{width}")
    if height * width > max_pixels:
        raise LgiFormatError(
            f".dcae image is {height}x{width} = {height * width} pixels, above the limit of "
            f"{max_pixels}; pass a larger max_pixels if this file is trusted"
        )
    y_shape, z_shape = latent_shapes(height, width)
    if (yh, yw) != y_shape or (zh, zw) != z_shape:
        raise LgiFormatError(
            f".dcae header: latent shapes y {yh}x{yw}, z {zh}x{zw} do not match the image "
            f"{height}x{width} (expected y {y_shape[0]}x{y_shape[1]}, z {z_shape[0]}x{z_shape[1]})"
        )
    if n_chunks != _NUM_CHUNKS:
        raise LgiFormatError(f".dcae header: {n_chunks} chunks, expected {_NUM_CHUNKS}")
    offset = HEADER_SIZE
    payloads = []
    for name in ("z", "y"):
        if len(data) - offset < _CHUNK.size:
            raise LgiFormatError(f".dcae file truncated: the {name} chunk header at byte {offset} is missing")
        length, crc = _CHUNK.unpack_from(data, offset)
        offset += _CHUNK.size
        if length > len(data) - offset:
            raise LgiFormatError(
                f".dcae file truncated: the {name} chunk at byte {offset} declares {length} bytes, "
                f"only {len(data) - offset} remain"
            )
        payload = data[offset : offset + length]
        if zlib.crc32(payload) != crc:
            raise LgiFormatError(
                f".dcae {name} chunk corrupted: CRC32 mismatch (bytes {offset}-{offset + length})"
            )
        payloads.append(payload)
        offset += length
    if offset != len(data):
        raise LgiFormatError(f".dcae file has {len(data) - offset} unexpected bytes after the last chunk")
    # λ is stored as float32: report it with the 7 significant digits float32 holds (0.0067, not 0.00669999).
    header = DcaeHeader(
        model_id, fingerprint, float(f"{lmbda:.7g}"), METRICS[metric], height, width, y_shape, z_shape
    )
    return header, payloads[1], payloads[0]


def model_name_of(header: DcaeHeader) -> str:
    """The preset name of the model that coded the file, from the frozen id table.

    Raises:
        LgiFormatError: the id is not in the table (a newer lgi-dictco wrote the file, or it is forged).
    """
    try:
        return model_name(header.model_id)
    except KeyError:
        raise LgiFormatError(
            f".dcae header: unknown model id {header.model_id} (a newer lgi-dictco wrote it?)"
        ) from None


def check_file(data: bytes, max_pixels: int = MAX_PIXELS) -> tuple[DcaeHeader, bytes, bytes]:
    """Every check of a ``.dcae`` file that needs no model: :func:`unpack`, a model id in the frozen
    table, and both chunks shaped like rANS streams.

    Pure Python (no torch, no compressai): ``lgi dictco decompress`` runs it before they load, and
    :func:`lgi_dictco.dcae.codec.decode` runs it first, so both refuse a file with the same message.

    Returns:
        (header, y_string, z_string), as :func:`unpack`.

    Raises:
        LgiFormatError: as :func:`unpack`, an unknown model id, or a chunk that cannot be a rANS stream.
    """
    from lgi_dictco.dcae._rans import check_stream

    header, y_string, z_string = unpack(data, max_pixels=max_pixels)
    model_name_of(header)
    check_stream(z_string, ".dcae z chunk")
    check_stream(y_string, ".dcae y chunk")
    return header, y_string, z_string
