"""The cost of drawing a decoded set, known before rendering (numpy only), and its band plan.

The bound against the rasterizer's own count and the banded renders are tested where the renderer is
available: packages/lgi/tests/test_decode_budgets.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from lgi_dictco import LgiFormatError
from lgi_dictco.gauss import LgiHeader, decode_cost, decode_lgi, dequantize, encode_lgi
from lgi_dictco.gauss.decoder import BAND_INTERSECTIONS, MAX_ABS_COLOR, DecodeCost


def _params(means, sigma):
    n = len(means)
    return {"means": np.asarray(means, np.float32), "scales": np.full((n, 2), sigma, np.float32),
            "rotations": np.zeros(n, np.float32), "colors": np.zeros((n, 3), np.float32)}


def _header(mode="topk", k=10):
    return LgiHeader(width=1, height=1, render_mode=mode, topk=k)


def test_one_small_gaussian_costs_the_tiles_of_its_box():
    # Centre (40, 40) px in 100 x 100, sigma 2 px: radius 6, +1 margin: pixels 33..46 -> tiles 2..2 x 2..2.
    c = decode_cost(_params([[0.4, 0.4]], 0.02), _header(), 100, 100)
    assert c.intersections == 1 and c.row_intersections.tolist() == [0, 0, 1, 0, 0, 0, 0]
    # Centre 32 px: pixels 25..38 straddle the border of tiles 1 and 2 on both axes.
    c = decode_cost(_params([[0.32, 0.32]], 0.02), _header(), 100, 100)
    assert c.intersections == 4 and c.row_intersections.tolist() == [0, 2, 2, 0, 0, 0, 0]


def test_covering_and_off_canvas_gaussians():
    c = decode_cost(_params([[0.5, 0.5]] * 7, 10.0), _header(), 100, 40)
    assert c.intersections == 7 * 7 * 3 and c.row_intersections.tolist() == [49, 49, 49]
    c = decode_cost(_params([[3.0, 0.5], [-2.0, -2.0]], 0.01), _header(), 100, 40)
    assert c.intersections == 0
    c = decode_cost(_params(np.zeros((0, 2)), 0.1), _header(), 64, 64)
    assert c.intersections == 0 and c.row_intersections.tolist() == [0] * 4


def test_non_finite_geometry_counts_as_covering():
    p = _params([[0.5, 0.5]], 1.0)
    p["scales"][:] = np.float32(3e38)  # the square overflows: the rasterizer caps the radius
    assert decode_cost(p, _header(), 64, 32).intersections == 4 * 2


def _cost(w, h, rows, slots=10):
    return DecodeCost(w, h, 3, slots, 1, int(np.sum(rows)), np.asarray(rows, np.int64))


def test_small_images_are_one_band_and_forced_bands_split_anything():
    c = _cost(768, 512, [10] * 32)
    assert c.bands() == [(0, 512)]
    assert c.bands(band_rows=100) == [(0, 100), (100, 200), (200, 300), (300, 400), (400, 500), (500, 512)]
    with pytest.raises(ValueError, match="band_rows"):
        c.bands(band_rows=0)


def test_bands_are_whole_tile_rows_within_the_budgets():
    c = _cost(1000, 1000, [5] * 63)
    # 135 B a pixel (float32 output and 3 copies of 3 channels, the 8-bit row, K = 10 int32 indices and
    # float32 weights, their sum): 64 rows of 1000 pixels.
    bands = c.bands(band_bytes=1000 * 64 * 135)
    assert bands[0] == (0, 64) and bands[-1][1] == 1000 and all((b - a) <= 64 for a, b in bands)
    assert all(a % 16 == 0 for a, _ in bands) and all(b == a2 for (_, b), (a2, _) in zip(bands, bands[1:]))
    # The tile-list budget splits too: here every tile row alone is at the limit.
    heavy = _cost(100, 64, [BAND_INTERSECTIONS] * 4)
    assert heavy.bands() == [(0, 16), (16, 32), (32, 48), (48, 64)]
    assert heavy.band_intersections(heavy.bands()) == BAND_INTERSECTIONS
    # A canvas so wide that 16 rows would overflow the budget: bands of fewer rows.
    wide = _cost(1 << 22, 64, [0] * 4, slots=32)
    bands = wide.bands()
    assert all(b - a < 16 for a, b in bands) and bands[-1][1] == 64
    assert all((b - a) * (1 << 22) * 32 < 1 << 31 for a, b in bands)


def test_colours_beyond_the_limit_are_refused_after_the_transform():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_lgi_format import make_payload

    for cs in ("rgb", "opp"):
        p = make_payload(n=20, k_shape=0, k_color=0, color_space=cs)
        p.color.lo[:] = np.float32(MAX_ABS_COLOR * 2)
        with pytest.raises(LgiFormatError, match="beyond the decoder limit"):
            dequantize(decode_lgi(encode_lgi(p)))
        p.color.lo[:] = np.float32(-0.5)
        assert np.abs(dequantize(decode_lgi(encode_lgi(p)))["colors"]).max() < MAX_ABS_COLOR
