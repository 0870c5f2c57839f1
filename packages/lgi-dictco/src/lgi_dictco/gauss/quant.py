"""The ``.lgi`` quantization transforms in numpy, written once (docs/format.md).

The decoder computes every float32 parameter from integers with these functions; the encoder's torch
twins (:mod:`lgi_dictco.gauss.torch_quant`) are tested equal to them. All arithmetic is float32 and
deterministic, so a file decodes to the same bits wherever numpy runs the same way.
"""

from __future__ import annotations

import numpy as np

# Orthonormal opponent transform (rows: luma, red-blue, green-magenta); rgb = OPPONENT.T @ opp.
OPPONENT = np.array([[1 / np.sqrt(3), 1 / np.sqrt(3), 1 / np.sqrt(3)],
                     [1 / np.sqrt(2), 0.0, -1 / np.sqrt(2)],
                     [1 / np.sqrt(6), -2 / np.sqrt(6), 1 / np.sqrt(6)]], dtype=np.float32)
_SQRT2 = np.float32(1.4142135623730951)


def class_multiplier(e: int) -> np.float32:
    """2^(e/2) as float32, built exactly (a power of two times √2 for odd e): the same bits everywhere."""
    base = _SQRT2 if e % 2 else np.float32(1.0)
    return np.float32(np.ldexp(base, e // 2))


def class_steps(step: np.ndarray, exps: np.ndarray) -> np.ndarray:
    """[K, D] float32 steps of every precision class: ``step`` [D] × 2^(e_k/2) for ``exps`` [K]."""
    step = np.asarray(step, dtype=np.float32)
    return np.stack([step * class_multiplier(int(e)) for e in exps]).astype(np.float32)


def cell_centres(positions: np.ndarray, pos_bits: tuple[int, int], drop: np.ndarray) -> np.ndarray:
    """[N, 2] float32 centres in the unit square of grid cells ``positions`` [N, 2] (qx, qy).

    Args:
        positions: [N, 2] int cells on each Gaussian's class grid, 2**(bx - drop) × 2**(by - drop).
        pos_bits: (bx, by) bits of the finest grid.
        drop: [N] int position bits each Gaussian's class drops per axis.
    """
    bx, by = pos_bits
    q = np.asarray(positions).astype(np.float32)
    # 2**-(bits) is exact in float32, so every class's cell centre is computed exactly.
    inv_x = np.ldexp(np.float32(1.0), -(bx - drop)).astype(np.float32)
    inv_y = np.ldexp(np.float32(1.0), -(by - drop)).astype(np.float32)
    return np.stack([(q[:, 0] + np.float32(0.5)) * inv_x, (q[:, 1] + np.float32(0.5)) * inv_y], axis=1)


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


def opponent_to_rgb(colors: np.ndarray) -> np.ndarray:
    """[N, 3] opponent-space colours → RGB (rows of ``OPPONENT`` are orthonormal: the inverse is the transpose)."""
    return colors @ OPPONENT
