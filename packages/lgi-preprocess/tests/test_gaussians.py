"""SLIC Gaussian initialization (conventions, degenerate segments, JSON) and placement sampling."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lgi_preprocess import PreprocessError, SlicGaussians, generate_slic_gaussians, sample_positions


def _unit_centres(mask: np.ndarray) -> np.ndarray:
    H, W = mask.shape
    rows, cols = np.nonzero(mask)
    return np.stack([(cols + 0.5) / W, (rows + 0.5) / H], axis=1)


def test_rectangle_segment_position_scale_rotation():
    H, W = 40, 80
    seg = np.zeros((H, W), np.int32)
    seg[10:14, 20:60] = 1  # 4 rows × 40 columns: major axis along +x
    g = generate_slic_gaussians(np.zeros((H, W, 3), np.float32), segments=seg)
    assert len(g) == 2 and list(g.segment_ids) == [0, 1] and list(g.pixel_counts) == [H * W - 160, 160]
    i = 1
    np.testing.assert_allclose(g.positions[i], [40 / W, 12 / H], rtol=1e-6)  # pixel centres 20.5..59.5, 10.5..13.5
    cov = np.cov(_unit_centres(seg == 1).T)
    np.testing.assert_allclose(g.scales[i], [np.sqrt(cov[0, 0]), np.sqrt(cov[1, 1])], rtol=1e-5)
    assert g.rotations[i] == pytest.approx(0.0, abs=1e-6)


def test_rotation_is_measured_from_x_toward_y():
    """A diagonal going right and down (+x, +y) has rotation +45° in a square image; the other -45°."""
    n = 32
    eye = np.eye(n, dtype=bool)
    seg = np.zeros((n, n), np.int32)
    seg[eye] = 1
    seg[np.fliplr(eye)] = 2
    seg[n // 2 - 1:n // 2 + 1, n // 2 - 1:n // 2 + 1] = 0  # keep the crossing out of both lines
    g = generate_slic_gaussians(np.zeros((n, n, 3), np.float32), segments=seg)
    assert g.rotations[1] == pytest.approx(np.pi / 4, abs=1e-5)
    assert g.rotations[2] == pytest.approx(-np.pi / 4, abs=1e-5)
    # One pixel thick: the minor axis gets the half-pixel floor along its direction.
    assert g.scales[1, 1] == pytest.approx(0.5 / n, rel=1e-5)


def test_covariances_reproduce_segment_covariance(make_scene):
    img = make_scene(64, 96)
    g = generate_slic_gaussians(img, n_segments=40)
    from lgi_preprocess import slic_segments

    seg = slic_segments(img, 40)
    assert len(g) == seg.max() + 1
    covs = g.covariances()
    checked = 0
    for k, label in enumerate(g.segment_ids):
        mask = seg == label
        pts = _unit_centres(mask)
        np.testing.assert_allclose(g.positions[k], pts.mean(axis=0), rtol=1e-5)
        np.testing.assert_allclose(g.colors[k], img[mask].mean(axis=0), atol=1e-5)
        rows, cols = np.nonzero(mask)
        if np.ptp(rows) >= 2 and np.ptp(cols) >= 2:  # not degenerate: no floor applied
            ref = np.cov(pts.T)
            # scales and rotations are float32: ~1e-7 of the matrix's size is their rounding
            np.testing.assert_allclose(covs[k], ref, rtol=1e-5, atol=1e-6 * np.trace(ref))
            assert g.scales[k, 0] >= g.scales[k, 1]
            checked += 1
    assert checked >= len(g) // 2


def test_single_pixel_segment_gets_half_pixel_scale():
    H, W = 10, 20
    seg = np.zeros((H, W), np.int32)
    seg[3, 7] = 1
    g = generate_slic_gaussians(np.ones((H, W, 3), np.float32), segments=seg)
    np.testing.assert_allclose(g.scales[1], [0.5 / W, 0.5 / H], rtol=1e-6)
    assert g.rotations[1] == 0.0 and g.pixel_counts[1] == 1
    np.testing.assert_allclose(g.positions[1], [7.5 / W, 3.5 / H], rtol=1e-6)
    np.testing.assert_allclose(g.colors[1], [1, 1, 1])


def test_slic_count_near_request_and_path_input(image_file):
    g = generate_slic_gaussians(image_file, n_segments=60)
    assert 30 <= len(g) <= 90
    assert g.source_image == str(image_file) and (g.width, g.height) == (96, 64)
    assert g.positions.dtype == np.float32 and g.positions.shape == (len(g), 2)
    assert g.scales.shape == (len(g), 2) and g.rotations.shape == (len(g),) and g.colors.shape == (len(g), 3)
    assert np.all((g.positions > 0) & (g.positions < 1)) and np.all(g.scales > 0)
    assert np.all(np.abs(g.rotations) <= np.pi / 2 + 1e-6)
    assert int(g.pixel_counts.sum()) == 96 * 64


def test_json_schema_and_round_trip(tmp_path, make_scene):
    g = generate_slic_gaussians(make_scene(48, 64), n_segments=20)
    path = g.to_json(tmp_path / "slic_init.json")
    doc = json.loads(path.read_text())
    assert set(doc) == {"source_image", "image_width", "image_height", "n_segments_requested", "n_gaussians",
                        "gaussians"}
    assert doc["n_gaussians"] == len(g) == len(doc["gaussians"]) and doc["n_segments_requested"] == 20
    first = doc["gaussians"][0]
    assert set(first) == {"position", "scale", "rotation", "color", "segment_id", "pixel_count"}
    assert len(first["position"]) == 2 and len(first["scale"]) == 2 and len(first["color"]) == 3
    assert isinstance(first["segment_id"], int) and isinstance(first["rotation"], float)
    back = SlicGaussians.from_json(path)
    for name in ("positions", "scales", "rotations", "colors", "segment_ids", "pixel_counts"):
        np.testing.assert_array_equal(getattr(back, name), getattr(g, name))
    assert (back.width, back.height) == (64, 48)


def test_from_json_rejects_malformed(tmp_path):
    (tmp_path / "bad.json").write_text('{"gaussians": [{"position": [0.5]}]}')
    with pytest.raises(PreprocessError, match="slic_init"):
        SlicGaussians.from_json(tmp_path / "bad.json")
    (tmp_path / "garbage.json").write_text("{not json")
    with pytest.raises(PreprocessError):
        SlicGaussians.from_json(tmp_path / "garbage.json")


def test_segments_must_match_image():
    with pytest.raises(PreprocessError, match="do not match"):
        generate_slic_gaussians(np.zeros((4, 4, 3), np.float32), segments=np.zeros((4, 5), np.int32))


def test_sample_positions_follow_the_map_and_stay_in_their_pixel():
    p = np.zeros((4, 8), np.float32)
    p[1, 2], p[3, 7] = 3.0, 1.0
    xy = sample_positions(p, 20000, seed=1)
    assert xy.dtype == np.float32 and xy.shape == (20000, 2)
    cols, rows = np.floor(xy[:, 0] * 8).astype(int), np.floor(xy[:, 1] * 4).astype(int)
    hits = set(zip(rows.tolist(), cols.tolist()))
    assert hits == {(1, 2), (3, 7)}  # zero-probability pixels are never drawn
    share = np.mean((rows == 1) & (cols == 2))
    assert share == pytest.approx(0.75, abs=0.015)
    inside = xy[(rows == 1) & (cols == 2)]
    # uniform jitter inside the pixel: it spans the pixel, it is not the pixel centre
    assert np.ptp(inside[:, 0]) > 0.9 / 8 and np.ptp(inside[:, 1]) > 0.9 / 4


def test_sample_positions_deterministic_per_seed():
    p = np.random.default_rng(0).random((16, 16))
    a, b = sample_positions(p, 100, seed=7), sample_positions(p, 100, seed=7)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, sample_positions(p, 100, seed=8))
    assert sample_positions(p, 0, seed=1).shape == (0, 2)


@settings(max_examples=30, deadline=None)
@given(h=st.integers(1, 40), w=st.integers(1, 40), seed=st.integers(0, 2**32 - 1))
def test_sample_positions_in_unit_square(h, w, seed):
    p = np.random.default_rng(seed).random((h, w)) ** 4
    xy = sample_positions(p, 200, seed=seed)
    assert np.all(xy >= 0) and np.all(xy < 1)


@pytest.mark.parametrize("placement,n", [(np.zeros((3, 3)), 5), (-np.ones((3, 3)), 5), (np.ones(9), 5),
                                         (np.ones((3, 3)), -1), (np.full((3, 3), np.nan), 5)])
def test_sample_positions_refuses_bad_input(placement, n):
    with pytest.raises(PreprocessError):
        sample_positions(placement, n, seed=0)
