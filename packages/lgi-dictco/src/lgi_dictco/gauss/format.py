"""The ``.lgi`` container: a fitted, quantized set of 2D Gaussians, entropy coded (docs/format.md).

This module owns the bitstream only: quantized integers in (:func:`encode_lgi`), quantized integers out
(:func:`decode_lgi`). The float32 parameters those integers stand for come from
:mod:`lgi_dictco.gauss.quant` (via :func:`lgi_dictco.gauss.decoder.dequantize`). Fitting and quantizing
live in lgi-train; decoding needs only this package and the renderer.

Parameter coding (format 2.x):

* precision classes: every Gaussian belongs to one of K ≤ 8 classes (a stream of class ids). A
  class coarsens the position grid by ``class_drop[k]`` bits per axis and multiplies the quantizer
  step of every shape and colour dimension by 2^(e/2) (``class_exp[k]`` of the group). The encoder
  gives sensitive Gaussians fine grids and insensitive ones coarse grids (docs/codec.md): at the
  same rate, the quantization error lands where it shows least.
* positions: a fixed-point grid of ``2**bx × 2**by`` cells over the unit square for the finest
  class; Gaussians are stored in Morton (Z-curve) order of their cells' origins, so the order costs
  nothing. The sorted Morton codes at the coarsest class's grid are delta coded (bucketed rANS
  stream); each Gaussian's remaining bits down to its own class's grid follow raw.
* shape and colour are *groups* of D values per Gaussian (shape: the log-Euclidean features
  m = log σ₁ + log σ₂, u = a·cos 2θ, v = a·sin 2θ with a = log σ₁ − log σ₂; colour: C channels,
  in RGB, or for ``opp`` in the orthonormal opponent space ``OPPONENT`` · rgb, whose channels
  are nearly uncorrelated and whose uniform steps cost the same RGB error as in RGB).
  Every value of dimension d is an integer q in 0 .. levels_d − 1 standing for lo_d + q·step_d
  (float32 lo and step, integer levels ≤ 4096, all in the header). A group has a codebook of K
  entries (K may be 0) and one index per Gaussian in 0..K, where K means "not in the codebook":
  such Gaussians carry their own values, on the grid of their class: lo_d + q·step_d·2^(e_k/2),
  q < levels[k, d]. Own values are entropy coded per dimension and class; with entropy coding, a
  wide range costs only the values that use it. Codebook entries use class 0's grid.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from lgi_dictco.bitio import BitReader, BitWriter, read_varint, write_varint
from lgi_dictco.container import chunk_sizes, read_container, write_container
from lgi_dictco.entropy import MAX_ALPHABET, decode_stream, encode_stream
from lgi_dictco.errors import LgiFormatError
from lgi_dictco.gauss.quant import class_steps

MAGIC = b"\x89LGI\r\n\x1a\n"
VERSION = (2, 1)  # 2.1: render mode 2 (continuous top-K); a 2.0 file reads unchanged

# Documented decoder limits (docs/format.md): checked before anything is allocated.
MAX_PIXELS = 1 << 27          # 134 M pixels (e.g. 16384 × 8192) for the stored size
MAX_SIDE = 1 << 16
MAX_GAUSSIANS = 1 << 21       # 2 M
MAX_CHANNELS = 4
MAX_POS_BITS = 20
MAX_LEVELS = MAX_ALPHABET     # direct rANS alphabets stay <= 4096
MAX_TOPK = 32
MAX_CLASSES = 8
MAX_CLASS_EXP = 16      # |e|: step multipliers 2^(e/2) within 2^-8 .. 2^8

# Frozen ids, never derived from dict order. 0 is the top-K blend with a hard cutoff that format 2.0
# files were made with (lgi_gsplat2d mode "topk-hard"); 2 the continuous one (mode "topk").
RENDER_MODES = {0: "topk-hard", 1: "sum", 2: "topk"}
COLOR_SPACES = {0: "rgb", 1: "gray", 2: "opp"}   # "opp": lgi_dictco.gauss.quant.OPPONENT
GROUPS = (b"SHAP", b"COLR")


@dataclass
class GroupCoding:
    """One attribute group, quantized.

    Attributes:
        lo, step: [D] float32: value = lo + q·step·2^(e_k/2) for a Gaussian of class k.
        levels: [K, D] int, 1..4096: q < levels[k] (a [D] array means K = 1).
        codebook: [K_g, D] int codebook entries (K_g may be 0), on class 0's grid.
        indices: [N] int in 0..K_g; K_g = "own values" (None when K_g == 0).
        scalars: [E, D] int own values of the E Gaussians whose index is K_g, in Gaussian order.
        class_exp: [K] int step exponents e_k (None: all 0).
    """

    lo: np.ndarray
    step: np.ndarray
    levels: np.ndarray
    codebook: np.ndarray
    indices: np.ndarray | None
    scalars: np.ndarray
    class_exp: np.ndarray | None = None

    @property
    def dims(self) -> int:
        return int(np.asarray(self.lo).size)

    @property
    def levels2d(self) -> np.ndarray:
        return np.asarray(self.levels, dtype=np.int64).reshape(-1, self.dims)

    @property
    def exps(self) -> np.ndarray:
        k = self.levels2d.shape[0]
        return np.zeros(k, np.int64) if self.class_exp is None else np.asarray(self.class_exp, np.int64)

    def class_steps(self) -> np.ndarray:
        """[K, D] float32 steps of every class."""
        return class_steps(self.step, self.exps)

    def own_mask(self, n: int) -> np.ndarray:
        k = self.codebook.shape[0]
        return np.ones(n, bool) if k == 0 else np.asarray(self.indices) == k

    def dequantize(self, classes: np.ndarray | None = None) -> np.ndarray:
        """[N, D] float32 values (exact, deterministic float32 arithmetic); ``classes``: [N] class ids."""
        lo = np.asarray(self.lo, dtype=np.float32)
        steps = self.class_steps()
        cb = lo + self.codebook.astype(np.float32) * steps[0]
        k = self.codebook.shape[0]
        n = self.scalars.shape[0] if k == 0 else np.asarray(self.indices).size
        cls = np.zeros(n, np.int64) if classes is None else np.asarray(classes, np.int64)
        own = self.own_mask(n)
        sc = lo + self.scalars.astype(np.float32) * steps[cls[own]]
        if k == 0:
            return sc.astype(np.float32)
        idx = np.asarray(self.indices)
        out = np.empty((idx.size, self.dims), dtype=np.float32)
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
    class_drop: tuple[int, ...] = (0,)   # per precision class: position bits dropped per axis

    @property
    def num_classes(self) -> int:
        return len(self.class_drop)


@dataclass
class LgiPayload:
    """A quantized Gaussian set. Arrays are in any order on encode; decode returns Morton order.

    Attributes:
        positions: [N, 2] int grid cells (qx, qy) of each Gaussian's class grid:
            qx < 2**(bx - drop_k), qy < 2**(by - drop_k).
        shape: the 3-value shape group; color: the C-value colour group.
        classes: [N] precision class ids in 0..K-1 (None: all 0).
    """

    header: LgiHeader
    positions: np.ndarray
    shape: GroupCoding
    color: GroupCoding
    chunk_bytes: dict[str, int] = field(default_factory=dict)
    classes: np.ndarray | None = None

    def class_ids(self) -> np.ndarray:
        n = self.header.num_gaussians
        return np.zeros(n, np.int64) if self.classes is None else np.asarray(self.classes, np.int64)

    def fine_cells(self) -> np.ndarray:
        """[N, 2] the origin of every Gaussian's cell on the finest grid (2**bx × 2**by)."""
        drop = np.asarray(self.header.class_drop, np.int64)[self.class_ids()]
        return np.asarray(self.positions, np.int64) << drop[:, None]


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


def _zz(v: int) -> int:
    return 2 * v if v >= 0 else -2 * v - 1


def _unzz(u: int) -> int:
    return u // 2 if u % 2 == 0 else -(u + 1) // 2


def _group_header(g: GroupCoding) -> bytes:
    out = bytearray(write_varint(g.codebook.shape[0]))
    for lo, step in zip(np.asarray(g.lo, np.float32), np.asarray(g.step, np.float32)):
        out += _F32.pack(lo) + _F32.pack(step)
    for e, levels in zip(g.exps, g.levels2d):
        out += write_varint(_zz(int(e)))
        for lv in levels:
            out += write_varint(int(lv))
    return bytes(out)


def _encode_header(h: LgiHeader, shape: GroupCoding, color: GroupCoding) -> bytes:
    out = bytearray()
    for v in (h.width, h.height, h.channels, _inv(COLOR_SPACES, h.color_space, "colour space"),
              _inv(RENDER_MODES, h.render_mode, "render mode"), h.topk, h.num_gaussians, *h.pos_bits,
              h.num_classes, *h.class_drop):
        out += write_varint(int(v))
    return bytes(out) + _group_header(shape) + _group_header(color)


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise LgiFormatError(msg)


def _decode_header(data: bytes) -> tuple[LgiHeader, list[dict]]:
    pos = 0
    vals = []
    for name in ("width", "height", "channels", "colour space", "render mode", "top-k", "Gaussian count",
                 "x position bits", "y position bits", "precision classes"):
        v, pos = read_varint(data, pos, f".lgi header ({name})", limit=1 << 32)
        vals.append(v)
    w, h, c, cs, rm, k, n, bx, by, nk = vals
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
    _check(1 <= nk <= MAX_CLASSES, f".lgi header: {nk} precision classes (1..{MAX_CLASSES} supported)")
    drops = []
    for _ in range(nk):
        d, pos = read_varint(data, pos, ".lgi header (class position drop)", limit=1 << 8)
        _check(d < min(bx, by), f".lgi header: a class drops {d} position bits of {min(bx, by)}")
        drops.append(d)
    groups = []
    for gname, dims in (("shape", 3), ("colour", c)):
        kcb, pos = read_varint(data, pos, f".lgi header ({gname} codebook size)", limit=MAX_ALPHABET - 1)
        lo, step = [], []
        for _ in range(dims):
            _check(pos + 8 <= len(data), f".lgi header is truncated in the {gname} group")
            lo.append(_F32.unpack_from(data, pos)[0])
            step.append(_F32.unpack_from(data, pos + 4)[0])
            pos += 8
        exps, levels = [], []
        for _ in range(nk):
            e, pos = read_varint(data, pos, f".lgi header ({gname} class exponent)", limit=2 * MAX_CLASS_EXP)
            exps.append(_unzz(e))
            row = []
            for _ in range(dims):
                lv, pos = read_varint(data, pos, f".lgi header ({gname} levels)", limit=MAX_LEVELS)
                _check(lv >= 1, f".lgi header: {gname} levels must be >= 1")
                row.append(lv)
            levels.append(row)
        g = GroupCoding(np.array(lo, np.float32), np.array(step, np.float32), np.array(levels, np.int64).reshape(nk, dims),
                        np.zeros((0, dims), np.int64), None, np.zeros((0, dims), np.int64), np.array(exps, np.int64))
        _check(bool(np.isfinite(g.lo).all() and np.isfinite(g.step).all() and (g.step > 0).all()),
               f".lgi header: {gname} quantizer is not finite or has a step <= 0")
        with np.errstate(over="ignore", invalid="ignore"):
            steps = g.class_steps()
            top = g.lo + steps * g.levels2d.astype(np.float32)
        _check(bool(np.isfinite(steps).all() and (steps > 0).all() and np.isfinite(top).all()),
               f".lgi header: {gname} quantizer range overflows float32")
        groups.append({"k": kcb, "dims": dims, "lo": g.lo, "step": g.step, "levels": g.levels2d, "exps": g.exps})
    _check(pos == len(data), f".lgi header has {len(data) - pos} unexpected trailing bytes")
    header = LgiHeader(width=w, height=h, channels=c, color_space=COLOR_SPACES[cs], render_mode=RENDER_MODES[rm],
                       topk=k, num_gaussians=n, pos_bits=(bx, by), class_drop=tuple(drops))
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


def _encode_group(g: GroupCoding, classes: np.ndarray) -> bytes:
    """Codebook bits, [index stream], then one own-value stream per (dimension, class)."""
    k = g.codebook.shape[0]
    levels = g.levels2d
    bw = BitWriter()
    bw.write_array(g.codebook.ravel(), np.tile(_bits_for(levels[0]), k))
    parts = [bw.getvalue()]
    if k:
        parts.append(encode_stream(g.indices, k + 1))
    own_cls = classes[g.own_mask(classes.size)]
    for d in range(g.dims):
        for c in range(levels.shape[0]):
            parts.append(encode_stream(g.scalars[own_cls == c, d], int(levels[c, d])))
    return _frame(parts)


def _decode_group(data: bytes, spec: dict, classes: np.ndarray, what: str) -> GroupCoding:
    k, dims, levels = spec["k"], spec["dims"], spec["levels"]
    nk, n = levels.shape[0], classes.size
    parts = _unframe(data, 1 + (1 if k else 0) + dims * nk, what)
    br = BitReader(parts[0], f"{what} codebook")
    codebook = br.read_array(np.tile(_bits_for(levels[0]), k)).reshape(k, dims)
    _check(bool((codebook < levels[0][None, :]).all()), f"{what} codebook has values beyond its levels")
    if k:
        indices = decode_stream(parts[1], n, f"{what} indices", max_value=k)
        own = indices == k
    else:
        indices, own = None, np.ones(n, bool)
    own_cls = classes[own]
    counts = np.bincount(own_cls, minlength=nk)
    scalars = np.zeros((own_cls.size, dims), np.int64)
    streams = iter(parts[-dims * nk:] if dims else [])
    rows = [np.flatnonzero(own_cls == c) for c in range(nk)]  # each class's rows, found once
    for d in range(dims):
        for c in range(nk):
            scalars[rows[c], d] = decode_stream(next(streams), int(counts[c]), f"{what} values",
                                                max_value=int(levels[c, d]) - 1)
    return GroupCoding(lo=spec["lo"], step=spec["step"], levels=levels, codebook=codebook, indices=indices,
                       scalars=scalars, class_exp=spec["exps"])


# --- public API ----------------------------------------------------------------------------------

def _validate(p: LgiPayload) -> None:
    h = p.header
    n = h.num_gaussians
    bx, by = h.pos_bits
    nk = h.num_classes
    if not 1 <= nk <= MAX_CLASSES or min(h.class_drop) < 0 or max(h.class_drop) >= min(bx, by):
        raise ValueError(f"class_drop must hold 1..{MAX_CLASSES} values in 0..{min(bx, by) - 1}")
    cls = p.class_ids()
    if cls.shape != (n,) or (n and (cls.min() < 0 or cls.max() >= nk)):
        raise ValueError(f"classes must be [{n}] in 0..{nk - 1}")
    if p.positions.shape != (n, 2):
        raise ValueError(f"positions must be [{n}, 2], got {tuple(p.positions.shape)}")
    drop = np.asarray(h.class_drop, np.int64)[cls]
    if n and (p.positions.min() < 0 or (p.positions[:, 0] >= 1 << (bx - drop)).any()
              or (p.positions[:, 1] >= 1 << (by - drop)).any()):
        raise ValueError("positions outside the position grid")
    for name, g, dims in (("shape", p.shape, 3), ("color", p.color, h.channels)):
        k = g.codebook.shape[0]
        if g.dims != dims or g.codebook.shape[1:] != (dims,):
            raise ValueError(f"{name} group must have {dims} values per entry")
        if k and (g.indices is None or g.indices.shape != (n,) or g.indices.min(initial=0) < 0
                  or g.indices.max(initial=0) > k):
            raise ValueError(f"{name} indices must be [{n}] in 0..{k}")
        own = g.own_mask(n)
        if g.scalars.shape != (int(own.sum()), dims):
            raise ValueError(f"{name} scalars must be [{int(own.sum())}, {dims}]")
        levels = g.levels2d
        if levels.shape != (nk, dims) or levels.min() < 1 or levels.max() > MAX_LEVELS:
            raise ValueError(f"{name} levels must be [{nk}, {dims}] in 1..{MAX_LEVELS}")
        if g.exps.shape != (nk,) or np.abs(g.exps).max(initial=0) > MAX_CLASS_EXP:
            raise ValueError(f"{name} class exponents must be [{nk}] in -{MAX_CLASS_EXP}..{MAX_CLASS_EXP}")
        if not (np.isfinite(g.step).all() and (np.asarray(g.step) > 0).all() and np.isfinite(g.lo).all()):
            raise ValueError(f"{name} quantizer must have finite lo and step > 0")
        if g.codebook.size and (g.codebook.min() < 0 or (g.codebook >= levels[0][None, :]).any()):
            raise ValueError(f"{name} codebook values outside 0..levels-1")
        if g.scalars.size and (g.scalars.min() < 0 or (g.scalars >= levels[cls[own]]).any()):
            raise ValueError(f"{name} values outside 0..levels-1 of their class")


def _reorder(g: GroupCoding, order: np.ndarray) -> GroupCoding:
    k = g.codebook.shape[0]
    if k == 0:
        return GroupCoding(g.lo, g.step, g.levels, g.codebook, None, g.scalars[order], g.class_exp)
    own_rows = np.cumsum(g.indices == k) - 1  # row of each own-valued Gaussian in scalars
    idx = g.indices[order]
    src = own_rows[order][idx == k]
    return GroupCoding(g.lo, g.step, g.levels, g.codebook, idx, g.scalars[src], g.class_exp)


def encode_lgi(payload: LgiPayload) -> bytes:
    """Serialize a quantized Gaussian set; Gaussians are reordered along the Z-curve."""
    _validate(payload)
    h = payload.header
    bx, by = h.pos_bits
    fine = payload.fine_cells()
    order = np.argsort(morton_encode(fine[:, 0], fine[:, 1], bx, by), kind="stable")
    cls = payload.class_ids()[order]
    drop = np.asarray(h.class_drop, np.int64)
    dmax = int(drop.max())
    fine = fine[order]
    coarse = morton_encode(fine[:, 0] >> dmax, fine[:, 1] >> dmax, bx - dmax, by - dmax)
    refine = dmax - drop[cls]  # bits below the coarse grid, per axis
    cells = payload.positions[order]
    mask = (np.int64(1) << refine) - 1
    bw = BitWriter()
    bw.write_array(np.stack([cells[:, 0] & mask, cells[:, 1] & mask], 1).ravel(), np.repeat(refine, 2))
    chunks = [(b"HEAD", _encode_header(h, payload.shape, payload.color)),
              (b"POSN", encode_stream(np.diff(coarse, prepend=0)))]
    if h.num_classes > 1:
        chunks.append((b"CLAS", encode_stream(cls, h.num_classes)))
    if dmax:
        chunks.append((b"PREF", bw.getvalue()))
    chunks += [(b"SHAP", _encode_group(_reorder(payload.shape, order), cls)),
               (b"COLR", _encode_group(_reorder(payload.color, order), cls))]
    return write_container(MAGIC, VERSION, chunks)


def read_header(data: bytes) -> LgiHeader:
    """The header of a ``.lgi`` file (size, channels, Gaussian count, ...) without decoding its streams:
    the container is verified (magic, version, chunk CRCs) and only the HEAD chunk parsed.

    Raises:
        LgiFormatError: as :func:`decode_lgi` for the container and the header.
    """
    _check_version(data)
    _, chunks = read_container(data, MAGIC, VERSION[0], {b"HEAD", b"POSN", b"CLAS", b"PREF", *GROUPS}, ".lgi")
    _check(b"HEAD" in chunks, ".lgi file lacks its HEAD chunk")
    return _decode_header(chunks[b"HEAD"])[0]


def _check_version(data: bytes) -> None:
    if len(data) >= len(MAGIC) + 2 and data[:len(MAGIC)] == MAGIC and data[len(MAGIC)] < VERSION[0]:
        raise LgiFormatError(f".lgi format version {data[len(MAGIC)]}.{data[len(MAGIC) + 1]} is an older "
                             f"format that this decoder (version {VERSION[0]}.x) no longer reads; "
                             "encode the image again")


def decode_lgi(data: bytes) -> LgiPayload:
    """Parse a ``.lgi`` file into its quantized payload (Morton order).

    Raises:
        LgiFormatError: anything wrong with the file, with a message saying what and where.
    """
    _check_version(data)
    _, chunks = read_container(data, MAGIC, VERSION[0], {b"HEAD", b"POSN", b"CLAS", b"PREF", *GROUPS}, ".lgi")
    for need in (b"HEAD", b"POSN", *GROUPS):
        _check(need in chunks, f".lgi file lacks its {need.decode()} chunk")
    header, specs = _decode_header(chunks[b"HEAD"])
    n, nk = header.num_gaussians, header.num_classes
    bx, by = header.pos_bits
    drop = np.asarray(header.class_drop, np.int64)
    dmax = int(drop.max())
    cbits = bx + by - 2 * dmax
    deltas = decode_stream(chunks[b"POSN"], n, ".lgi positions", max_value=(1 << cbits) - 1)
    codes = np.cumsum(deltas)
    _check(not n or int(codes[-1]) < 1 << cbits, ".lgi positions run past the position grid")
    cx, cy = morton_decode(codes, bx - dmax, by - dmax)
    if nk > 1:
        _check(b"CLAS" in chunks, ".lgi file lacks its CLAS chunk")
        classes = decode_stream(chunks[b"CLAS"], n, ".lgi precision classes", max_value=nk - 1)
    else:
        classes = np.zeros(n, np.int64)
    refine = dmax - drop[classes]
    if dmax:
        _check(b"PREF" in chunks, ".lgi file lacks its PREF chunk")
        low = BitReader(chunks[b"PREF"], ".lgi position refinement").read_array(np.repeat(refine, 2)).reshape(n, 2)
    else:
        low = np.zeros((n, 2), np.int64)
    positions = np.stack([(cx << refine) | low[:, 0], (cy << refine) | low[:, 1]], axis=1)
    shape = _decode_group(chunks[b"SHAP"], specs[0], classes, ".lgi shape")
    color = _decode_group(chunks[b"COLR"], specs[1], classes, ".lgi colour")
    sizes = {name: size for name, size in chunk_sizes(data, MAGIC)}
    return LgiPayload(header=header, positions=positions, shape=shape, color=color, chunk_bytes=sizes,
                      classes=classes if nk > 1 else None)

