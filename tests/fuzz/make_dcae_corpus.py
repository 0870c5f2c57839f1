"""Write the checked-in corpus of hostile `.dcae` files: tests/fuzz/corpus/dcae/*.dcae and expected.json.

    python tests/fuzz/make_dcae_corpus.py       # rewrite the corpus (deterministic: same bytes every run)

Each file is one hostile class of issue 14 that the bytes alone refuse: header fields, CRCs, chunk
framing and the shape of a rANS stream (``lgi_dictco.dcae.format.check_file``). expected.json holds the
start of each one-line error; test_fuzz_dcae.py replays them, with and without the model. Needs no
torch (format.py is pure Python), like the check it feeds.

Hostile payloads that only the model's tables can refuse (the 8-byte ``01 01 …`` chunks whose escape
claims 15 bypass groups) are not here: test_dcae_rans.py and test_dcae_fuzz.py decode those.
"""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus_files import write_corpus  # noqa: E402

from lgi_dictco.dcae.format import DcaeHeader, latent_shapes, pack  # noqa: E402

OUT = Path(__file__).resolve().parent / "corpus" / "dcae"
_TINY = 3  # the frozen id of dcae-tiny: a model id the decoder knows
_Z, _Y = bytes(range(8)), bytes(range(16))  # whole 32-bit words, at least the coder state: stream-shaped


def _file(h=64, w=64, y=_Y, z=_Z, model_id=_TINY) -> bytes:
    y_shape, z_shape = latent_shapes(h, w)
    return pack(DcaeHeader(model_id, 0x1234ABCD, 0.0067, "mse", h, w, y_shape, z_shape), y, z)


def _reseal(data: bytes, offset: int, fmt: str, *values) -> bytes:
    """Change a header field and recompute the header CRC, as a forger would."""
    b = bytearray(data)
    struct.pack_into(fmt, b, offset, *values)
    struct.pack_into("<I", b, 48, zlib.crc32(bytes(b[:48])))
    return bytes(b)


def _flip(data: bytes, offset: int) -> bytes:
    b = bytearray(data)
    b[offset] ^= 0x40
    return bytes(b)


def corpus() -> dict[str, tuple[bytes, str]]:
    good = _file()
    y_at = len(good) - len(_Y)  # the y payload is last; its length field 8 bytes before it
    stream = "a rANS stream is a whole number of 32-bit words"
    files = {
        # compressai's decoder read past its buffer on this one (a segfault): consistent 1024×1024
        # header, valid CRCs, empty chunks. 68 bytes.
        "empty_chunks_1024": (_file(1024, 1024, y=b"", z=b""), f".dcae z chunk: {stream}"),
        "z_not_whole_words": (_file(z=bytes(10)), f".dcae z chunk: {stream}"),
        "y_not_whole_words": (_file(y=bytes(13)), f".dcae y chunk: {stream}"),
        "y_shorter_than_coder_state": (_file(y=bytes(4)), f".dcae y chunk: {stream}"),
        # CRCs: a byte of the height changed (header CRC), a byte of the y payload changed (chunk CRC).
        "header_crc_mismatch": (_flip(good, 20), ".dcae header corrupted: its CRC32 does not match"),
        "y_chunk_crc_mismatch": (_flip(good, y_at + 3), ".dcae y chunk corrupted: CRC32 mismatch"),
        # Framing: cut short, lengths that lie, bytes after the last chunk.
        "truncated_header": (good[:40], ".dcae file truncated: 40 bytes, the header alone needs 52"),
        "truncated_in_y": (good[:-5], ".dcae file truncated: the y chunk at byte"),
        "z_length_lies_4gib": (good[:52] + struct.pack("<II", (1 << 32) - 1, zlib.crc32(_Z)) + good[60:],
                               ".dcae file truncated: the z chunk at byte 60 declares 4294967295 bytes"),
        "trailing_bytes": (good + b"\0\0\0\0", ".dcae file has 4 unexpected bytes after the last chunk"),
        # Dimensions: 2^32 - 1 square (consistent latents, valid CRCs), one row past the 2^28-pixel limit,
        # and latent shapes that do not follow from the image size.
        "size_2_32": (_file((1 << 32) - 1, (1 << 32) - 1), ".dcae image is 4294967295x4294967295"),
        "size_over_limit": (_file(16385, 16384), ".dcae image is 16385x16384 = 268451840 pixels"),
        "latents_lie": (_reseal(good, 28, "<IIII", 1, 1, 1, 1), ".dcae header: latent shapes y 1x1"),
        # Other header fields: NaN λ, a model id no table holds, a newer version, 255 chunks.
        "nan_lambda": (_reseal(good, 12, "<f", float("nan")), ".dcae header: invalid λ nan"),
        "unknown_model_id": (_reseal(good, 6, "<H", 999), ".dcae header: unknown model id 999"),
        "version_2": (_reseal(good, 4, "<B", 2), "unsupported .dcae version 2"),
        "chunks_255": (_reseal(good, 44, "<B", 255), ".dcae header: 255 chunks, expected 2"),
    }
    return files


def main() -> None:
    write_corpus(OUT, corpus(), ".dcae")


if __name__ == "__main__":
    main()
