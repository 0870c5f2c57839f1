"""The ``.lgi`` file: a fitted, quantized set of 2D Gaussians, entropy coded (docs/format.md).

This module owns the bitstream only: quantized integers in, quantized integers out, plus the exact
dequantization to float32 parameters that the renderer (lgi-gsplat2d) consumes. Fitting and
quantizing live in lgi-train; decoding needs only this package and the renderer.

Parameter coding (format 1.x):

* positions: a fixed-point grid of ``2**bx × 2**by`` cells over the unit square; Gaussians are
  stored in Morton (Z-curve) order of their cells, so the order costs nothing, and the sorted
  Morton codes are delta coded (bucketed rANS stream).
* shape and colour are *groups* of D values per Gaussian (shape: the log-Euclidean features
  m = log σ₁ + log σ₂, u = a·cos 2θ, v = a·sin 2θ with a = log σ₁ − log σ₂; colour: C channels,
  in RGB, or for ``opp`` in the orthonormal opponent space ``OPPONENT`` · rgb, whose channels
  are nearly uncorrelated and whose uniform steps cost the same RGB error as in RGB).
  Every value of dimension d is an integer q in 0 .. levels_d − 1 standing for lo_d + q·step_d
  (float32 lo and step, integer levels ≤ 4096, all in the header). A group has a codebook of K
  entries (K may be 0) and one index per Gaussian in 0..K, where K means "not in the codebook":
  such Gaussians carry their own values. Own values are entropy coded per dimension; with
  entropy coding, a wide range costs only the values that use it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from lgi_dictco.bitio import BitReader, BitWriter, read_varint, write_varint
from lgi_dictco.container import chunk_sizes, read_container, write_container
from lgi_dictco.entropy import MAX_ALPHABET, decode_stream, encode_stream
from lgi_dictco.errors import LgiFormatError

MAGIC = b"\x89LGI\r\n\x1a\n"
VERSION = (1, 0)

# Documented decoder limits (docs/format.md): checked before anything is allocated.
MAX_PIXELS = 1 << 27          # 134 M pixels (e.g. 16384 × 8192) for the stored size
MAX_SIDE = 1 << 16
MAX_GAUSSIANS = 1 << 21       # 2 M
MAX_CHANNELS = 4
MAX_POS_BITS = 20
MAX_LEVELS = MAX_ALPHABET     # direct rANS alphabets stay <= 4096
MAX_TOPK = 32

RENDER_MODES = {0: "topk", 1: "sum"}       # frozen ids, never derived from dict order
COLOR_SPACES = {0: "rgb", 1: "gray", 2: "opp"}
# Orthonormal opponent transform (rows: luma, red-blue, green-magenta); rgb = OPPONENT.T @ opp.
OPPONENT = np.array([[1 / np.sqrt(3), 1 / np.sqrt(3), 1 / np.sqrt(3)],
                     [1 / np.sqrt(2), 0.0, -1 / np.sqrt(2)],
                     [1 / np.sqrt(6), -2 / np.sqrt(6), 1 / np.sqrt(6)]], dtype=np.float32)
GROUPS = (b"SHAP", b"COLR")


@dataclass
class GroupCoding:
    """One attribute group, quantized.

    Attributes:
        lo, step: [D] float32: value = lo + q·step.
        levels: [D] int, 1..4096: q < levels.
        codebook: [K, D] int codebook entries (K may be 0).
        indices: [N] int in 0..K; K = "own values" (None when K == 0).
        scalars: [E, D] int own values of the E Gaussians whose index is K, in Gaussian order.
    """

    lo: np.ndarray
    step: np.ndarray
    levels: np.ndarray
    codebook: np.ndarray
    indices: np.ndarray | None
    scalars: np.ndarray

    @property
    def dims(self) -> int:
        return int(self.lo.size)

    def dequantize(self) -> np.ndarray:
        """[N, D] float32 values (exact, deterministic float32 arithmetic)."""
        lo = self.lo.astype(np.float32)
        step = self.step.astype(np.float32)
        cb = lo + self.codebook.astype(np.float32) * step
        sc = lo + self.scalars.astype(np.float32) * step
        k = self.codebook.shape[0]
        if k == 0:
            return sc.astype(np.float32)
        idx = np.asarray(self.indices)
        out = np.empty((idx.size, self.dims), dtype=np.float32)
        own = idx == k
        out[~own] = cb[idx[~own]]
        out[own] = sc
        return out


@dataclass
class LgiHeader:
    width: int
    height: int
    channels: int = 3
    color_space: str = "rgb"
    render_mode: str = "topk"
    topk: int = 10
    num_gaussians: int = 0
    pos_bits: tuple[int, int] = (12, 12)


@dataclass
class LgiPayload:
    """A quantized Gaussian set. Arrays are in any order on encode; decode returns Morton order.

    Attributes:
        positions: [N, 2] int grid cells (qx, qy), qx < 2**bx, qy < 2**by.
        shape: the 3-value shape group; color: the C-value colour group.
    """

    header: LgiHeader
    positions: np.ndarray
    shape: GroupCoding
    color: GroupCoding
    chunk_bytes: dict[str, int] = field(default_factory=dict)


# --- Morton order --------------------------------------------------------------------------------

def morton_encode(qx: np.ndarray, qy: np.ndarray, bx: int, by: int) -> np.ndarray:
    """Interleave bits (x in the even positions) for the common low bits; the extra high bits of the
    longer coordinate go on top. Returns int64 codes < 2**(bx + by)."""
    qx = np.asarray(qx, dtype=np.int64)
    qy = np.asarray(qy, dtype=np.int64)
    code = np.zeros_like(qx)
    common = min(bx, by)
    for b in range(common):
        code |= ((qx >> b) & 1) << (2 * b)
        code |= ((qy >> b) & 1) << (2 * b + 1)
    hi = (qx >> common) if bx > by else (qy >> common)
    return code | (hi << (2 * common))


def morton_decode(code: np.ndarray, bx: int, by: int) -> tuple[np.ndarray, np.ndarray]:
    code = np.asarray(code, dtype=np.int64)
    qx = np.zeros_like(code)
    qy = np.zeros_like(code)
    common = min(bx, by)
    for b in range(common):
        qx |= ((code >> (2 * b)) & 1) << b
        qy |= ((code >> (2 * b + 1)) & 1) << b
    hi = code >> (2 * common)
    if bx > by:
        qx |= hi << common
    else:
        qy |= hi << common
    return qx, qy


def morton_order(positions: np.ndarray, pos_bits: tuple[int, int]) -> np.ndarray:
    """The permutation that sorts Gaussians along the Z-curve (stable: ties keep input order)."""
    codes = morton_encode(positions[:, 0], positions[:, 1], *pos_bits)
    return np.argsort(codes, kind="stable")


# --- header --------------------------------------------------------------------------------------

_F32 = struct.Struct("<f")


def _inv(table: dict[int, str], name: str, what: str) -> int:
    for k, v in table.items():
        if v == name:
            return k
    raise ValueError(f"unknown {what} {name!r}; known: {sorted(table.values())}")


def _group_header(g: GroupCoding) -> bytes:
    out = bytearray(write_varint(g.codebook.shape[0]))
    for lo, step, levels in zip(g.lo.astype(np.float32), g.step.astype(np.float32), g.levels):
        out += _F32.pack(lo) + _F32.pack(step) + write_varint(int(levels))
    return bytes(out)


def _encode_header(h: LgiHeader, shape: GroupCoding, color: GroupCoding) -> bytes:
    out = bytearray()
    for v in (h.width, h.height, h.channels, _inv(COLOR_SPACES, h.color_space, "colour space"),
              _inv(RENDER_MODES, h.render_mode, "render mode"), h.topk, h.num_gaussians, *h.pos_bits):
        out += write_varint(int(v))
    return bytes(out) + _group_header(shape) + _group_header(color)


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise LgiFormatError(msg)


def _decode_header(data: bytes) -> tuple[LgiHeader, list[dict]]:
    pos = 0
    vals = []
    for name in ("width", "height", "channels", "colour space", "render mode", "top-k", "Gaussian count",
                 "x position bits", "y position bits"):
        v, pos = read_varint(data, pos, f".lgi header ({name})", limit=1 << 32)
        vals.append(v)
    w, h, c, cs, rm, k, n, bx, by = vals
    _check(1 <= w <= MAX_SIDE and 1 <= h <= MAX_SIDE and w * h <= MAX_PIXELS,
           f".lgi header: image size {w}x{h} is outside the decoder limits (sides 1..{MAX_SIDE}, "
           f"at most {MAX_PIXELS} pixels)")
    _check(1 <= c <= MAX_CHANNELS, f".lgi header: {c} channels (1..{MAX_CHANNELS} supported)")
    _check(cs in COLOR_SPACES, f".lgi header: unknown colour space id {cs}")
    _check(COLOR_SPACES.get(cs) != "opp" or c == 3, ".lgi header: the opponent colour space needs 3 channels")
    _check(rm in RENDER_MODES, f".lgi header: unknown render mode id {rm}")
    _check(1 <= k <= MAX_TOPK, f".lgi header: top-k {k} outside 1..{MAX_TOPK}")
    _check(n <= MAX_GAUSSIANS, f".lgi header: {n} Gaussians exceed the decoder limit {MAX_GAUSSIANS}")
    _check(1 <= bx <= MAX_POS_BITS and 1 <= by <= MAX_POS_BITS,
           f".lgi header: position bits {bx}x{by} outside 1..{MAX_POS_BITS}")
    groups = []
    for gname, dims in (("shape", 3), ("colour", c)):
        kcb, pos = read_varint(data, pos, f".lgi header ({gname} codebook size)", limit=MAX_ALPHABET - 1)
        lo, step, levels = [], [], []
        for _ in range(dims):
            _check(pos + 8 <= len(data), f".lgi header is truncated in the {gname} group")
            lo.append(_F32.unpack_from(data, pos)[0])
            step.append(_F32.unpack_from(data, pos + 4)[0])
            lv, pos = read_varint(data, pos + 8, f".lgi header ({gname} levels)", limit=MAX_LEVELS)
            levels.append(lv)
        lo_a, step_a = np.array(lo, dtype=np.float32), np.array(step, dtype=np.float32)
        _check(bool(np.isfinite(lo_a).all() and np.isfinite(step_a).all() and (step_a > 0).all()),
               f".lgi header: {gname} quantizer is not finite or has a step <= 0")
        _check(all(lv >= 1 for lv in levels), f".lgi header: {gname} levels must be >= 1")
        _check(bool(np.isfinite(lo_a + step_a * np.array(levels, dtype=np.float32)).all()),
               f".lgi header: {gname} quantizer range overflows float32")
        groups.append({"k": kcb, "dims": dims, "lo": lo_a, "step": step_a,
                       "levels": np.array(levels, dtype=np.int64)})
    _check(pos == len(data), f".lgi header has {len(data) - pos} unexpected trailing bytes")
    header = LgiHeader(width=w, height=h, channels=c, color_space=COLOR_SPACES[cs], render_mode=RENDER_MODES[rm],
                       topk=k, num_gaussians=n, pos_bits=(bx, by))
    return header, groups


# --- group payloads ------------------------------------------------------------------------------

def _frame(parts: list[bytes]) -> bytes:
    return b"".join(write_varint(len(p)) + p for p in parts)


def _unframe(data: bytes, count: int, what: str) -> list[bytes]:
    parts, pos = [], 0
    for _ in range(count):
        n, pos = read_varint(data, pos, what, limit=len(data))
        _check(pos + n <= len(data), f"{what} is truncated")
        parts.append(data[pos:pos + n])
        pos += n
    _check(pos == len(data), f"{what} has {len(data) - pos} unexpected trailing bytes")
    return parts


def _bits_for(levels: np.ndarray) -> np.ndarray:
    return np.array([max(0, int(lv - 1).bit_length()) for lv in levels], dtype=np.int64)


def _encode_group(g: GroupCoding, n: int) -> bytes:
    k = g.codebook.shape[0]
    bw = BitWriter()
    bw.write_array(g.codebook.ravel(), np.tile(_bits_for(g.levels), k))
    parts = [bw.getvalue()]
    if k:
        parts.append(encode_stream(g.indices, k + 1))
    parts += [encode_stream(g.scalars[:, d], int(g.levels[d])) for d in range(g.dims)]
    return _frame(parts)


def _decode_group(data: bytes, spec: dict, n: int, what: str) -> GroupCoding:
    k, dims = spec["k"], spec["dims"]
    parts = _unframe(data, 1 + (1 if k else 0) + dims, what)
    br = BitReader(parts[0], f"{what} codebook")
    codebook = br.read_array(np.tile(_bits_for(spec["levels"]), k)).reshape(k, dims)
    _check(bool((codebook < spec["levels"][None, :]).all()), f"{what} codebook has values beyond its levels")
    if k:
        indices = decode_stream(parts[1], n, f"{what} indices", max_value=k)
        n_own = int((indices == k).sum())
    else:
        indices, n_own = None, n
    cols = [decode_stream(p, n_own, f"{what} values", max_value=int(spec["levels"][d]) - 1)
            for d, p in enumerate(parts[-dims:])]
    scalars = np.stack(cols, axis=1) if dims else np.zeros((n_own, 0), np.int64)
    return GroupCoding(lo=spec["lo"], step=spec["step"], levels=spec["levels"], codebook=codebook,
                       indices=indices, scalars=scalars.reshape(n_own, dims))


# --- public API ----------------------------------------------------------------------------------

def _validate(p: LgiPayload) -> None:
    h = p.header
    n = h.num_gaussians
    bx, by = h.pos_bits
    if p.positions.shape != (n, 2):
        raise ValueError(f"positions must be [{n}, 2], got {tuple(p.positions.shape)}")
    if n and (p.positions.min() < 0 or p.positions[:, 0].max() >= 1 << bx or p.positions[:, 1].max() >= 1 << by):
        raise ValueError("positions outside the position grid")
    for name, g, dims in (("shape", p.shape, 3), ("color", p.color, h.channels)):
        k = g.codebook.shape[0]
        if g.dims != dims or g.codebook.shape[1:] != (dims,):
            raise ValueError(f"{name} group must have {dims} values per entry")
        if k and (g.indices is None or g.indices.shape != (n,) or g.indices.min(initial=0) < 0
                  or g.indices.max(initial=0) > k):
            raise ValueError(f"{name} indices must be [{n}] in 0..{k}")
        own = n if k == 0 else int((g.indices == k).sum())
        if g.scalars.shape != (own, dims):
            raise ValueError(f"{name} scalars must be [{own}, {dims}]")
        levels = np.asarray(g.levels)
        if levels.shape != (dims,) or levels.min() < 1 or levels.max() > MAX_LEVELS:
            raise ValueError(f"{name} levels must be [{dims}] in 1..{MAX_LEVELS}")
        if not (np.isfinite(g.step).all() and (np.asarray(g.step) > 0).all() and np.isfinite(g.lo).all()):
            raise ValueError(f"{name} quantizer must have finite lo and step > 0")
        for arr in (g.codebook, g.scalars):
            if arr.size and (arr.min() < 0 or (arr >= levels[None, :]).any()):
                raise ValueError(f"{name} values outside 0..levels-1")


def encode_lgi(payload: LgiPayload) -> bytes:
    """Serialize a quantized Gaussian set; Gaussians are reordered along the Z-curve."""
    _validate(payload)
    h = payload.header
    order = morton_order(payload.positions, h.pos_bits)
    pos = payload.positions[order]
    codes = morton_encode(pos[:, 0], pos[:, 1], *h.pos_bits)
    deltas = np.diff(codes, prepend=0)

    def reorder(g: GroupCoding) -> GroupCoding:
        k = g.codebook.shape[0]
        if k == 0:
            return GroupCoding(g.lo, g.step, g.levels, g.codebook, None, g.scalars[order])
        own_rows = np.cumsum(g.indices == k) - 1  # row of each own-valued Gaussian in scalars
        idx = g.indices[order]
        src = own_rows[order][idx == k]
        return GroupCoding(g.lo, g.step, g.levels, g.codebook, idx, g.scalars[src])

    shape, color = reorder(payload.shape), reorder(payload.color)
    n = h.num_gaussians
    chunks = [(b"HEAD", _encode_header(h, shape, color)), (b"POSN", encode_stream(deltas)),
              (b"SHAP", _encode_group(shape, n)), (b"COLR", _encode_group(color, n))]
    return write_container(MAGIC, VERSION, chunks)


def decode_lgi(data: bytes) -> LgiPayload:
    """Parse a ``.lgi`` file into its quantized payload (Morton order).

    Raises:
        LgiFormatError: anything wrong with the file, with a message saying what and where.
    """
    _, chunks = read_container(data, MAGIC, VERSION[0], {b"HEAD", b"POSN", *GROUPS}, ".lgi")
    for need in (b"HEAD", b"POSN", *GROUPS):
        _check(need in chunks, f".lgi file lacks its {need.decode()} chunk")
    header, specs = _decode_header(chunks[b"HEAD"])
    n = header.num_gaussians
    bx, by = header.pos_bits
    deltas = decode_stream(chunks[b"POSN"], n, ".lgi positions", max_value=(1 << (bx + by)) - 1)
    codes = np.cumsum(deltas)
    _check(not n or int(codes[-1]) < 1 << (bx + by), ".lgi positions run past the position grid")
    qx, qy = morton_decode(codes, bx, by)
    shape = _decode_group(chunks[b"SHAP"], specs[0], n, ".lgi shape")
    color = _decode_group(chunks[b"COLR"], specs[1], n, ".lgi colour")
    sizes = {name: size for name, size in chunk_sizes(data, MAGIC)}
    return LgiPayload(header=header, positions=np.stack([qx, qy], axis=1), shape=shape, color=color,
                      chunk_bytes=sizes)


def shape_features_to_params(feat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(m, u, v) log-Euclidean shape features → (scales [N, 2], rotations [N]) in float32."""
    feat = feat.astype(np.float32)
    m, u, v = feat[:, 0], feat[:, 1], feat[:, 2]
    a = np.hypot(u, v)
    scales = np.exp(np.stack([(m + a) * np.float32(0.5), (m - a) * np.float32(0.5)], axis=1))
    return scales.astype(np.float32), (np.arctan2(v, u) * np.float32(0.5)).astype(np.float32)


def params_to_shape_features(scales: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """Inverse of :func:`shape_features_to_params` (any scale order, any angle)."""
    ls = np.log(np.asarray(scales, dtype=np.float64))
    m = ls[:, 0] + ls[:, 1]
    a = ls[:, 0] - ls[:, 1]
    two = 2.0 * np.asarray(rotations, dtype=np.float64).reshape(-1)
    return np.stack([m, a * np.cos(two), a * np.sin(two)], axis=1).astype(np.float32)


def dequantize(payload: LgiPayload) -> dict[str, np.ndarray]:
    """Float32 Gaussian parameters in the rasterizer's convention (unit square)."""
    h = payload.header
    bx, by = h.pos_bits
    q = payload.positions.astype(np.float32)
    means = np.stack([(q[:, 0] + np.float32(0.5)) / np.float32(1 << bx),
                      (q[:, 1] + np.float32(0.5)) / np.float32(1 << by)], axis=1)
    with np.errstate(over="ignore", invalid="ignore"):
        scales, rotations = shape_features_to_params(payload.shape.dequantize())
    _check(bool(np.isfinite(scales).all() and (scales > 0).all() and np.isfinite(rotations).all()),
           ".lgi shape values decode to non-finite or zero scales (corrupt or hostile file)")
    colors = payload.color.dequantize()
    _check(bool(np.isfinite(colors).all()), ".lgi colour values are not finite (corrupt or hostile file)")
    if h.color_space == "opp":
        colors = colors @ OPPONENT  # rows of OPPONENT are orthonormal: its inverse is its transpose
    return {"means": means.astype(np.float32), "scales": scales, "rotations": rotations,
            "colors": colors.astype(np.float32)}
