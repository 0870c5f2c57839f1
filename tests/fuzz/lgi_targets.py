"""Fuzz targets for `.lgi` decoding: what a forger writes, not random noise.

Random byte flips die at the CRCs, so every strategy here writes a well-framed file (valid chunk CRCs,
a header whose counts agree with its chunks where the format makes them agree) and puts the hostility
in the values: counts, bit lengths, alphabet sizes, float ranges, grids, classes, canvas sizes and
Gaussians that cover the whole canvas. Used by ``test_fuzz_lgi.py`` (a brief run in the default
suite), ``make_corpus.py`` (the checked-in corpus) and ``run_fuzz.py`` (``nox -s fuzz``).

The property (:func:`check`): decoding ends in one ``LgiFormatError`` or ``DecodeError`` with a
one-line message, or in an image of the planned size, finite, in [0, 1]; the same outcome twice
(deterministic); and ``lgi info``'s report never raises anything else.
"""

from __future__ import annotations

import struct

import numpy as np
from hypothesis import strategies as st

from lgi_dictco.bitio import BitWriter, write_varint
from lgi_dictco.container import write_container
from lgi_dictco.entropy import encode_stream
from lgi_dictco.gauss import MAGIC, VERSION, GroupCoding, LgiHeader, LgiPayload, encode_lgi

#: The fuzz runs' budgets: small enough that an accepted file renders in milliseconds.
FUZZ_PIXELS = 1 << 16
FUZZ_WORK = None  # the default work budget, which follows the output (at most 2^16 pixels here)

# --- building blocks -------------------------------------------------------------------------------


def container(chunks: list[tuple[bytes, bytes]]) -> bytes:
    """A ``.lgi`` container with valid CRCs around ``chunks``."""
    return write_container(MAGIC, VERSION, chunks)


def head_bytes(fields: list[int], groups: list[tuple[int, list[tuple[float, float]], list[tuple[int, list[int]]]]]
               ) -> bytes:
    """HEAD from raw values: the ten leading varints (+ class drops), then per group the codebook size,
    (lo, step) float32 pairs and per class (zigzag exponent, levels)."""
    out = bytearray(b"".join(write_varint(v) for v in fields))
    for k, lo_step, classes in groups:
        out += write_varint(k)
        for lo, step in lo_step:
            out += struct.pack("<ff", lo, step)
        for e, levels in classes:
            out += write_varint(e) + b"".join(write_varint(v) for v in levels)
    return bytes(out)


def raw_stream(kind: int, alphabet: int, first: int, diffs: list[int], payload: bytes,
               payload_len: int | None = None, raw: bytes = b"") -> bytes:
    """A stream written field by field, so that its model and lengths can lie."""
    bw = BitWriter()
    bw.write_ue(alphabet - 1)
    bw.write(first, 6)
    for d in diffs:
        bw.write_se(d)
    model = bw.getvalue()
    n = len(payload) if payload_len is None else payload_len
    return bytes([kind]) + write_varint(len(model)) + model + write_varint(n) + payload + raw


def covering_at_limit(width: int, height: int, slots: int) -> int:
    """The most canvas-covering Gaussians whose work fits the default decode budget at width x height (top-K
    ``slots`` = K, 0 for sum): n·tiles·weight <= WORK_PER_TILE·tiles + WORK_PER_GAUSSIAN·n, in integers."""
    from lgi_dictco.gauss import WORK_PER_GAUSSIAN, WORK_PER_TILE, work_weight

    tiles = -(-width // 16) * -(-height // 16)
    return WORK_PER_TILE * tiles // (tiles * work_weight(slots) - WORK_PER_GAUSSIAN)


def payload_file(n: int, width: int, height: int, *, log_scale=(-5.0, -2.0), mode: str = "topk", k: int = 10,
                 channels: int = 3, color_space: str | None = None, same: bool = False, seed: int = 0,
                 color_lo: float = 0.0, color_step: float = 1 / 63, color_levels: int = 64,
                 drops: tuple[int, ...] = (0,), exps: tuple[int, ...] | None = None, pos_bits=(10, 10)) -> bytes:
    """A valid file (through the encoder) with hostile ranges: n Gaussians of standard deviations in
    exp(log_scale); ``same``: all identical in one cell (a few hundred bytes for any n)."""
    rng = np.random.default_rng(seed)
    nk = len(drops)
    lo_m, hi_m = 2 * log_scale[0], 2 * log_scale[1]
    a = max(hi_m - lo_m, 1e-3)
    lo = np.array([lo_m, -a, -a], np.float32)
    step = np.array([max(hi_m - lo_m, 1e-3) / 255, 2 * a / 255, 2 * a / 255], np.float32)
    classes = rng.integers(0, nk, n)
    shape_q = rng.integers(0, 256, (n, 3))
    col_q = rng.integers(0, color_levels, (n, channels))
    d = np.asarray(drops)[classes]
    pos = np.stack([rng.integers(0, 1 << (pos_bits[0] - d)), rng.integers(0, 1 << (pos_bits[1] - d))], axis=1) \
        if n else np.zeros((0, 2), np.int64)
    if same and n:  # one cell of class 0's grid, one shape, one colour: the streams code nothing
        classes[:] = 0
        shape_q[:], col_q[:] = shape_q[0], col_q[0]
        pos[:] = pos[0] % (1 << (min(pos_bits) - drops[0]))
    e = None if exps is None else np.asarray(exps, np.int64)
    shape = GroupCoding(lo, step, np.full((nk, 3), 256), np.zeros((0, 3), np.int64), None, shape_q, e)
    color = GroupCoding(np.full(channels, color_lo, np.float32), np.full(channels, color_step, np.float32),
                        np.full((nk, channels), color_levels), np.zeros((0, channels), np.int64), None, col_q, e)
    cs = color_space or ("rgb" if channels == 3 else "gray")
    header = LgiHeader(width=width, height=height, channels=channels, color_space=cs, render_mode=mode, topk=k,
                       num_gaussians=n, pos_bits=pos_bits, class_drop=drops)
    return encode_lgi(LgiPayload(header, pos, shape, color, classes=classes if nk > 1 else None))


# --- strategies ------------------------------------------------------------------------------------

_F32 = st.one_of(st.floats(width=32, allow_nan=True, allow_infinity=True),
                 st.sampled_from([0.0, -0.0, 1e-45, 1e-30, 1.0, 3e38, -3e38, 1e19, 16.0, -16.0]))
_COUNT = st.one_of(st.integers(0, 40), st.integers(0, 5000), st.sampled_from([1 << 21, (1 << 21) + 1, 1 << 24,
                                                                            (1 << 32) - 1, 1 << 40]))
_SIDE = st.one_of(st.integers(0, 80), st.sampled_from([1, 16, 17, 255, 65536, 65537, 2048, (1 << 32) - 1]))


@st.composite
def forged_stream(draw, n_hint: int = 8) -> bytes:
    """A stream whose kind, model (alphabet, codes), lengths, payload and raw bits are all drawn."""
    choice = draw(st.integers(0, 3))
    if choice == 0:  # a real stream of hostile values: up to 2^48 - 1 in a bucketed stream
        values = draw(st.lists(st.one_of(st.integers(0, 8), st.integers(0, (1 << 48) - 1)), max_size=n_hint + 4))
        alphabet = draw(st.sampled_from([None, 1, 2, 5, 4096]))
        if alphabet is not None and values and max(values) >= alphabet:
            alphabet = None
        return encode_stream(np.asarray(values, np.int64), alphabet)
    if choice == 1:  # a lying model: huge alphabets, codes out of range, lengths past the end
        alphabet = draw(st.one_of(st.integers(1, 70), st.sampled_from([4096, 4097, 1 << 20])))
        diffs = draw(st.lists(st.integers(-70, 70), max_size=min(alphabet - 1, 80)))
        payload = draw(st.binary(max_size=48))
        if draw(st.booleans()):
            payload += bytes(-len(payload) % 4)
        plen = draw(st.one_of(st.none(), st.integers(0, 1 << 32)))
        return raw_stream(draw(st.sampled_from([0, 1, 1, 2, 255])), alphabet, draw(st.integers(0, 63)), diffs,
                          payload, plen, draw(st.binary(max_size=16)))
    if choice == 2:  # a bucketed model whose bit lengths go past 48 (the int64-wrap class)
        top = draw(st.integers(45, 63))
        codes = [0] * top + [draw(st.integers(1, 63))]
        diffs = [b - a for a, b in zip(codes, codes[1:])]
        return raw_stream(1, top + 1, codes[0], diffs, draw(st.binary(min_size=8, max_size=32)),
                          raw=draw(st.binary(max_size=64)))
    return draw(st.binary(max_size=64))


@st.composite
def forged_header_file(draw) -> bytes:
    """Every HEAD field drawn (sizes up to 2^40, unknown ids, too many classes, NaN and huge floats,
    levels 0 and 4097, exponents past 16) with forged streams in the other chunks, all CRCs valid."""
    w, h = draw(_SIDE), draw(_SIDE)
    channels = draw(st.integers(0, 6))
    n = draw(_COUNT)
    bx, by = draw(st.integers(0, 24)), draw(st.integers(0, 24))
    nk = draw(st.one_of(st.integers(1, 3), st.integers(0, 12)))
    drops = [draw(st.integers(0, 25)) for _ in range(min(nk, 12))]
    fields = [w, h, channels, draw(st.integers(0, 4)), draw(st.integers(0, 3)), draw(st.integers(0, 40)), n, bx, by,
              nk, *drops]
    groups = []
    for dims in (3, channels):
        k = draw(st.one_of(st.just(0), st.integers(0, 8), st.just(4096)))
        lo_step = [(draw(_F32), draw(_F32)) for _ in range(min(dims, 6))]
        classes = [(draw(st.integers(0, 40)), [draw(st.one_of(st.integers(1, 64), st.sampled_from([0, 4096, 4097])))
                                               for _ in range(min(dims, 6))]) for _ in range(min(nk, 12))]
        groups.append((k, lo_step, classes))
    head = head_bytes(fields, groups)
    if draw(st.booleans()):
        head = head[:draw(st.integers(0, len(head)))] + draw(st.binary(max_size=4))
    chunks = [(b"HEAD", head), (b"POSN", draw(forged_stream()))]
    if draw(st.booleans()):
        chunks.append((b"CLAS", draw(forged_stream())))
    if draw(st.booleans()):
        chunks.append((b"PREF", draw(st.binary(max_size=32))))
    for tag in (b"SHAP", b"COLR"):
        parts = [draw(st.one_of(forged_stream(), st.binary(max_size=8))) for _ in range(draw(st.integers(0, 8)))]
        chunks.append((tag, b"".join(write_varint(len(p)) + p for p in parts)))
    return container(draw(st.permutations(chunks)) if draw(st.integers(0, 9)) == 0 else chunks)


@st.composite
def hostile_valid_file(draw) -> bytes:
    """A file the encoder could write, with hostile contents: many identical or canvas-covering
    Gaussians, degenerate scales, extreme colours and opponent values, K = 32, classes at the limits."""
    mode = draw(st.sampled_from(["topk", "sum"]))
    channels = draw(st.sampled_from([3, 3, 1, 4]))
    cs = "opp" if channels == 3 and draw(st.booleans()) else None
    big = draw(st.integers(0, 4)) == 0
    n = draw(st.one_of(st.integers(0, 64), st.integers(0, 2000) if big else st.integers(0, 200)))
    side = st.one_of(st.integers(1, 96), st.sampled_from([1, 15, 16, 17, 65536, 2048]))
    lo_s = draw(st.one_of(st.floats(-60, 40), st.sampled_from([-60.0, 3.0, 30.0])))
    span = draw(st.floats(0, 8))
    nk = draw(st.integers(1, 3))
    drops = tuple(sorted(draw(st.lists(st.integers(0, 6), min_size=nk, max_size=nk)), reverse=True))
    exps = tuple(draw(st.lists(st.integers(-16, 16), min_size=nk, max_size=nk))) if nk > 1 else None
    lo_c = draw(st.one_of(st.floats(-2, 2), st.sampled_from([1e6, -1e7, 3e38, -3e38, 1e30])))
    step_c = draw(st.one_of(st.floats(1e-4, 1), st.sampled_from([1e-30, 1e30, 1e37])))
    levels = draw(st.sampled_from([1, 2, 64, 4096]))
    try:
        return payload_file(n, draw(side), draw(side), log_scale=(lo_s, lo_s + span), mode=mode,
                            k=draw(st.sampled_from([1, 10, 32])), channels=channels, color_space=cs,
                            same=draw(st.booleans()), seed=draw(st.integers(0, 3)), color_lo=lo_c, color_step=step_c,
                            color_levels=levels, drops=drops, exps=exps)
    except ValueError:
        # The encoder refuses some of these (a float32 range that overflows): a forger writes them anyway.
        return payload_file(n, 8, 8, mode=mode, channels=channels)


@st.composite
def edited_valid_file(draw) -> bytes:
    """A hostile valid file with a few bytes of one chunk rewritten and its CRC recomputed."""
    data = bytearray(draw(hostile_valid_file()))
    pos, chunks = len(MAGIC) + 2, []
    while pos + 8 <= len(data):
        tag, n = struct.unpack_from("<4sI", data, pos)
        chunks.append((tag, bytearray(data[pos + 8:pos + 8 + n])))
        pos += 12 + n
    chunks = [c for c in chunks if c[0] != b"END "]
    i = draw(st.integers(0, len(chunks) - 1))
    body = chunks[i][1]
    for _ in range(draw(st.integers(1, 4))):
        if body:
            body[draw(st.integers(0, len(body) - 1))] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(body)))
        body[cut:cut] = draw(st.binary(max_size=6))
    return container([(t, bytes(b)) for t, b in chunks])


def any_file():
    return st.one_of(forged_header_file(), hostile_valid_file(), edited_valid_file())


# --- the property ----------------------------------------------------------------------------------


def outcome(data: bytes, *, scale=None, band_rows=None, max_pixels=FUZZ_PIXELS, max_work=FUZZ_WORK):
    """One decode as `lgi decode` does it: the error message, or (plan, image)."""
    from lgi.decoding import DecodeError, prepare, render_plan
    from lgi_dictco import LgiFormatError

    try:
        plan = prepare(data, scale, max_pixels=max_pixels, max_work=max_work)
        if band_rows is not None:  # forced bands (the default plan is one band here), at most 64 of them
            plan.bands = plan.cost.bands(band_rows=max(band_rows, -(-plan.height // 64)))
        return plan, render_plan(plan, backend="cpu")
    except (LgiFormatError, DecodeError) as exc:
        msg = str(exc)
        assert msg and "\n" not in msg, f"not one line: {msg!r}"
        return msg


def check(data: bytes, *, scale=None, band_rows=None, max_pixels=FUZZ_PIXELS, max_work=FUZZ_WORK) -> str:
    """The fuzz property; returns "error" or "image" (for statistics)."""
    import torch

    from lgi.decoding import info_report
    from lgi_dictco import LgiFormatError

    kw = dict(scale=scale, band_rows=band_rows, max_pixels=max_pixels, max_work=max_work)
    first, second = outcome(data, **kw), outcome(data, **kw)
    try:
        info_report(data)
    except LgiFormatError:
        pass
    if isinstance(first, str):
        assert first == second, (first, second)
        return "error"
    (plan, image), (_, again) = first, second
    assert not isinstance(second, str)
    assert image.shape == (plan.header.channels, plan.height, plan.width), ("shape", tuple(image.shape))
    assert plan.width * plan.height <= max_pixels and plan.work <= plan.limits[1], ("budget", plan.work, plan.limits)
    assert max_work is None or plan.limits[1] == max_work, ("work limit", plan.limits, max_work)
    assert bool(torch.isfinite(image).all()), ("non-finite pixels", int((~torch.isfinite(image)).sum()))
    assert image.min() >= 0 and image.max() <= 1, ("range", float(image.min()), float(image.max()))
    assert torch.equal(image, again), "two decodes differ"
    return "image"
