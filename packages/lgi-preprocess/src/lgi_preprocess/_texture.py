"""Haralick texture score per tile: contrast / (energy + 0.01), fast and exactly as mahotas computes it.

The original tool called ``mahotas.features.haralick`` on every 32×32 tile (50 % overlap) of the uint8
grayscale image: 4 symmetric grey-level co-occurrence matrices (GLCM, offsets (0,1), (1,1), (1,0), (1,-1)),
13 features each, of which it kept two. That costs about 7 ms a tile, about 10 s for a Kodak image.

Only two GLCM statistics are needed, and both have closed forms that avoid building any matrix:

- contrast = Σ p(i,j) (i-j)² is the mean of (a-b)² over the tile's pixel pairs, so every tile's sum comes
  from one integral image of squared neighbour differences per offset;
- energy (angular second moment) = Σ p(i,j)² with p the symmetric GLCM normalized by its total 2n
  (n ordered pairs): with m(i,j) the count of unordered pairs {i, j}, Σ p² = (½ Σ_{i≠j} m² + Σ_i m(i,i)²) / n².
  The counts m are the lengths of the runs of equal keys (lo·256 + hi) in each tile's sorted pair keys.

:func:`tile_scores_mahotas` is the direct per-tile mahotas computation, the test oracle and the
benchmark's peer; the two agree to floating-point rounding.
"""

from __future__ import annotations

import numpy as np

#: mahotas' 2-D offsets (dy, dx), in its order.
OFFSETS: tuple[tuple[int, int], ...] = ((0, 1), (1, 1), (1, 0), (1, -1))
#: The original tool's regularizer in contrast / (energy + EPS).
ENERGY_EPS = 0.01
#: Keys sorted per chunk; bounds the temporary memory to a few tens of MB on any image size.
_CHUNK_ELEMENTS = 1 << 22


def tile_starts(n: int, tile: int, step: int) -> np.ndarray:
    """Start offsets of tiles of length ``min(tile, n)`` every ``step`` pixels, the last one flush with the end.

    The original stopped at ``range(0, n - tile, step)`` and left the last rows and columns with no tile
    (a band of zeros); here the last tile is moved to end exactly at ``n``.
    """
    size = min(tile, n)
    starts = list(range(0, n - size + 1, step))
    if starts[-1] != n - size:
        starts.append(n - size)
    return np.asarray(starts, dtype=np.int64)


def _box_sums(values: np.ndarray, ys: np.ndarray, xs: np.ndarray, h: int, w: int) -> np.ndarray:
    """Σ values[y:y+h, x:x+w] for every (y in ys, x in xs) via an integral image: [len(ys), len(xs)]."""
    ii = np.zeros((values.shape[0] + 1, values.shape[1] + 1), dtype=np.float64)
    np.cumsum(np.cumsum(values, axis=0, dtype=np.float64), axis=1, out=ii[1:, 1:])
    y0, x0 = ys[:, None], xs[None, :]
    return ii[y0 + h, x0 + w] - ii[y0, x0 + w] - ii[y0 + h, x0] + ii[y0, x0]


def _sum_squared_counts(keys: np.ndarray) -> np.ndarray:
    """Rows of uint16 pair keys (lo·256+hi) → ½ Σ_{off-diagonal} m² + Σ_{diagonal} m² per row: [rows]."""
    rows, m = keys.shape
    s = np.sort(keys, axis=1).ravel()
    new_run = np.empty(s.shape, dtype=bool)
    new_run[0] = True
    np.not_equal(s[1:], s[:-1], out=new_run[1:])
    new_run[::m] = True  # every row starts a run
    starts = np.flatnonzero(new_run)
    length = np.diff(starts, append=s.size).astype(np.float64)
    first = s[starts]
    weight = np.where((first >> 8) == (first & 0xFF), 1.0, 0.5)
    return np.bincount(starts // m, weights=length * length * weight, minlength=rows)


def tile_scores(gray_u8: np.ndarray, tile: int = 32, step: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Texture score contrast / (energy + 0.01) of every tile, contrast and energy averaged over 4 offsets.

    Args:
        gray_u8: [H, W] uint8 grayscale.
        tile: tile side in pixels (clipped to the image size).
        step: distance between tile starts (``tile // 2`` is the original 50 % overlap).

    Returns:
        (scores [ny, nx] float64, tile starts along y [ny], tile starts along x [nx]). Tiles narrower than
        2 pixels, for which mahotas has no co-occurrences and the original scored 0, score 0.
    """
    g = np.ascontiguousarray(gray_u8, dtype=np.uint8)
    H, W = g.shape
    th, tw = min(tile, H), min(tile, W)
    ys, xs = tile_starts(H, tile, step), tile_starts(W, tile, step)
    if th < 2 or tw < 2:
        return np.zeros((len(ys), len(xs))), ys, xs
    gi = g.astype(np.int32)
    contrast = np.zeros((len(ys), len(xs)))
    energy = np.zeros((len(ys), len(xs)))
    for dy, dx in OFFSETS:
        # Anchor a = (y, x) with partner b = (y + dy, x + dx); anchors are indexed from column c0.
        c0 = max(0, -dx)
        ah, aw = H - dy, W - abs(dx)  # anchors with a partner inside the image
        a = gi[:ah, c0:c0 + aw]
        b = gi[dy:dy + ah, c0 + dx:c0 + dx + aw]
        n = (th - dy) * (tw - abs(dx))  # ordered pairs inside one tile
        contrast += _box_sums((a - b) ** 2, ys, xs, th - dy, tw - abs(dx)) / n
        keys = (np.minimum(a, b) * 256 + np.maximum(a, b)).astype(np.uint16)
        windows = np.lib.stride_tricks.sliding_window_view(keys, (th - dy, tw - abs(dx)))
        rows_per_chunk = max(1, _CHUNK_ELEMENTS // (len(xs) * n))
        for r0 in range(0, len(ys), rows_per_chunk):
            sel = windows[ys[r0:r0 + rows_per_chunk, None], xs[None, :]]  # [r, nx, th-dy, tw-|dx|]
            sq = _sum_squared_counts(sel.reshape(-1, n))
            energy[r0:r0 + rows_per_chunk] += sq.reshape(-1, len(xs)) / float(n) ** 2
    contrast /= len(OFFSETS)
    energy /= len(OFFSETS)
    return contrast / (energy + ENERGY_EPS), ys, xs


def tile_scores_mahotas(gray_u8: np.ndarray, tile: int = 32, step: int = 16) -> tuple[np.ndarray, np.ndarray,
                                                                                        np.ndarray]:
    """The same scores with one ``mahotas.features.haralick`` call per tile (slow: the reference)."""
    import mahotas

    g = np.ascontiguousarray(gray_u8, dtype=np.uint8)
    H, W = g.shape
    th, tw = min(tile, H), min(tile, W)
    ys, xs = tile_starts(H, tile, step), tile_starts(W, tile, step)
    scores = np.zeros((len(ys), len(xs)))
    if th < 2 or tw < 2:
        return scores, ys, xs
    for i, y in enumerate(ys):
        for j, x in enumerate(xs):
            feats = mahotas.features.haralick(g[y:y + th, x:x + tw])  # [4 offsets, 13 features]
            scores[i, j] = feats[:, 1].mean() / (feats[:, 0].mean() + ENERGY_EPS)
    return scores, ys, xs
