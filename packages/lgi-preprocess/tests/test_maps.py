"""Every content map: shape, dtype, range, and a property it must have."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lgi_preprocess import (
    PreprocessError,
    distance_map,
    entropy_map,
    gradient_map,
    placement_map,
    saliency_map,
    skeleton_map,
    slic_segments,
    texture_map,
)
from lgi_preprocess._texture import tile_scores, tile_scores_mahotas
from lgi_preprocess.maps import upsample_tiles

FLOAT_MAPS = {
    "entropy": entropy_map,
    "gradient": gradient_map,
    "texture": texture_map,
    "saliency": saliency_map,
}


@pytest.mark.parametrize("name", sorted(FLOAT_MAPS))
@pytest.mark.parametrize("shape", [(64, 96), (37, 50), (128, 20)])
def test_float_maps_shape_dtype_range(name, shape, make_scene):
    out = FLOAT_MAPS[name](make_scene(*shape))
    assert out.shape == shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() == pytest.approx(1.0)


@pytest.mark.parametrize("name", sorted(FLOAT_MAPS))
def test_flat_image_gives_zero_map(name):
    flat = np.full((40, 56, 3), 0.37, np.float32)
    out = FLOAT_MAPS[name](flat)
    assert out.shape == (40, 56) and out.dtype == np.float32
    np.testing.assert_array_equal(out, 0.0)


@pytest.mark.parametrize("name", sorted(FLOAT_MAPS))
def test_uint8_and_float_inputs_agree(name, make_scene):
    u8 = np.round(make_scene() * 255).astype(np.uint8)
    np.testing.assert_allclose(FLOAT_MAPS[name](u8), FLOAT_MAPS[name](u8.astype(np.float32) / 255), atol=1e-5)


def test_saliency_does_not_rescale_uint8_twice(make_scene):
    """v1 computed (image * 255).astype(uint8) on an image that was already uint8: values wrapped around."""
    u8 = np.round(make_scene() * 255).astype(np.uint8)
    good = saliency_map(u8)
    wrapped = (u8.astype(np.int64) * 255 % 256).astype(np.uint8)  # what the v1 bug fed to the detector
    assert not np.allclose(saliency_map(wrapped), good, atol=0.05)
    np.testing.assert_allclose(good, saliency_map(u8 / np.float32(255)), atol=1e-5)


def test_saliency_peaks_on_the_odd_object():
    img = np.full((96, 96, 3), 0.5, np.float32)
    img[60:72, 20:32] = 1.0  # one bright square on a uniform field
    sal = saliency_map(img)
    r, c = np.unravel_index(np.argmax(sal), sal.shape)
    assert 52 <= r <= 80 and 12 <= c <= 40
    assert sal[10:30, 60:90].max() < 0.2


def test_gradient_single_edge_peaks_on_the_edge():
    img = np.zeros((32, 48), np.float32)
    img[:, 20:] = 1.0
    grad = gradient_map(img)
    assert set(np.unique(np.argmax(grad, axis=1))) <= {19, 20}
    np.testing.assert_allclose(grad[:, 19], 1.0)
    np.testing.assert_array_equal(grad[:, :18], 0.0)
    np.testing.assert_array_equal(grad[:, 22:], 0.0)


def test_gradient_torch_path_matches_opencv(make_scene):
    pytest.importorskip("torch")
    img = make_scene(37, 50)
    with pytest.warns(RuntimeWarning, match="no CUDA") if not _cuda() else _nullcontext():
        torch_grad = gradient_map(img, use_gpu=True)
    np.testing.assert_allclose(torch_grad, gradient_map(img), atol=1e-5)
    one_row = make_scene(1, 9)
    with pytest.warns(RuntimeWarning) if not _cuda() else _nullcontext():
        np.testing.assert_allclose(gradient_map(one_row, use_gpu=True), gradient_map(one_row), atol=1e-5)


@pytest.mark.cuda
def test_gradient_on_cuda_matches_opencv(make_scene):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    import warnings

    img = make_scene(128, 96)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # on a GPU there is no CPU-fallback warning
        np.testing.assert_allclose(gradient_map(img, use_gpu=True), gradient_map(img), atol=1e-5)


def test_gradient_use_gpu_without_torch_is_a_clear_error(monkeypatch, make_scene):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch → ImportError
    with pytest.raises(PreprocessError, match="needs PyTorch"):
        gradient_map(make_scene(), use_gpu=True)
    assert gradient_map(make_scene()).shape == (64, 96)  # the OpenCV path does not care


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_entropy_values_and_tiles():
    img = np.zeros((32, 64), np.uint8)
    img[:, 32:][:, ::2] = 200  # right half: two grey levels in equal share = 1 bit per tile
    ent = entropy_map(img, tile_size=16)
    np.testing.assert_array_equal(ent[:, :16], 0.0)  # flat tiles, away from the interpolation zone
    np.testing.assert_allclose(ent[:, 48:], 1.0)
    with pytest.raises(PreprocessError):
        entropy_map(img, tile_size=0)


def test_tile_maps_are_smooth_not_blocky():
    """Neighbouring pixels differ by a small fraction of a tile step: no jumps at tile borders."""
    rng = np.random.default_rng(3)
    img = np.repeat(np.repeat(rng.random((6, 6)), 16, axis=0), 16, axis=1)  # contrast changes per tile
    img = np.clip(img[..., None] * 0.5 + rng.random((96, 96, 1)) * img[..., None] * 0.5, 0, 1)
    for out in (entropy_map(img, 16), texture_map(img)):
        jumps = max(np.abs(np.diff(out, axis=0)).max(), np.abs(np.diff(out, axis=1)).max())
        assert jumps < 0.2, jumps  # bilinear over 16-pixel spacing: at most 1/16 of a tile-to-tile change
        assert np.unique(out).size > 500  # not a handful of block values


def test_upsample_tiles_is_bilinear_between_centres():
    vals = np.array([[0.0, 1.0]])
    out = upsample_tiles(vals, np.array([0.0]), np.array([2.0, 6.0]), 1, 9)
    np.testing.assert_allclose(out[0], [0, 0, 0, 0.25, 0.5, 0.75, 1, 1, 1])


def test_texture_high_on_texture_low_on_smooth(make_scene):
    tex = texture_map(make_scene(64, 128))
    assert tex[:, 100:].mean() > 5 * tex[:, :24].mean()


@settings(max_examples=20, deadline=None)
@given(h=st.integers(2, 48), w=st.integers(2, 48), levels=st.integers(1, 255), seed=st.integers(0, 2**16),
       tile=st.sampled_from([6, 13, 32]))
def test_texture_fast_path_equals_mahotas(h, w, levels, seed, tile):
    g = (np.random.default_rng(seed).random((h, w)) * levels).astype(np.uint8)
    fast, ys, xs = tile_scores(g, tile, max(1, tile // 2))
    ref, ys2, xs2 = tile_scores_mahotas(g, tile, max(1, tile // 2))
    np.testing.assert_array_equal(ys, ys2)
    np.testing.assert_array_equal(xs, xs2)
    np.testing.assert_allclose(fast, ref, rtol=1e-10, atol=1e-12)


def test_texture_map_methods_agree_and_tiles_reach_the_edge(make_scene):
    img = make_scene(70, 90)
    np.testing.assert_allclose(texture_map(img), texture_map(img, method="mahotas"), atol=1e-6)
    noisy_edge = np.zeros((64, 64), np.float32)
    noisy_edge[56:, :] = np.random.default_rng(0).random((8, 64))  # texture only in the last 8 rows
    assert texture_map(noisy_edge)[60:].min() > 0.5  # the original's last tile stopped 16+ rows short
    with pytest.raises(PreprocessError):
        texture_map(img, method="skimage")


def test_slic_count_near_n_segments_and_labels(make_scene):
    img = make_scene(96, 128)
    for n in (16, 64, 150):
        seg = slic_segments(img, n_segments=n)
        assert seg.dtype == np.int32 and seg.shape == (96, 128)
        k = int(seg.max()) + 1
        assert np.array_equal(np.unique(seg), np.arange(k))  # consecutive from 0
        assert 0.5 * n <= k <= 1.5 * n, (n, k)
    np.testing.assert_array_equal(slic_segments(img, 64), slic_segments(img, 64))  # deterministic


def test_distance_single_segment_peaks_in_the_centre():
    seg = np.zeros((21, 31), np.int32)
    d = distance_map(seg)
    assert d.dtype == np.float32 and d.shape == seg.shape and d.max() == 1.0
    np.testing.assert_allclose(d[10, 10:21], 1.0)  # the ridge along the middle row is the farthest
    assert d[10, 15] > d[5, 15] > d[1, 15] > d[0, 15]
    border = np.concatenate([d[0], d[-1], d[:, 0], d[:, -1]])
    np.testing.assert_allclose(border, border.min())  # the image edge bounds the segment


def test_distance_matches_brute_force_per_segment(make_scene):
    from scipy import ndimage

    seg = slic_segments(make_scene(48, 64), n_segments=30)
    expected = np.zeros(seg.shape)
    for label in np.unique(seg):
        inside = np.pad(seg == label, 1)
        expected[seg == label] = ndimage.distance_transform_edt(inside)[1:-1, 1:-1][seg == label]
    np.testing.assert_allclose(distance_map(seg), expected / expected.max(), atol=1e-5)


def test_skeleton_of_a_bar_is_its_midline_and_small_segments_are_skipped():
    seg = np.zeros((30, 60), np.int32)
    seg[10:19, 5:55] = 1  # a 9-pixel-thick bar, midline at row 14
    seg[0:3, 0:3] = 2  # 9 pixels: below min_size
    sk = skeleton_map(seg, min_size=100)
    assert sk.dtype == np.float32 and set(np.unique(sk)) == {0.0, 1.0}
    rows, cols = np.nonzero(sk[10:19, 5:55])
    assert np.all(np.abs(rows + 10 - 14) <= 1) and cols.max() - cols.min() > 30
    assert sk[0:3, 0:3].sum() == 0
    assert skeleton_map(seg, min_size=5)[0:3, 0:3].sum() > 0
    with pytest.raises(PreprocessError):
        skeleton_map(np.zeros((3, 3), np.float32))


def test_placement_sums_to_one_and_follows_weights():
    rng = np.random.default_rng(0)
    maps = {k: rng.random((20, 30)).astype(np.float32) for k in ("entropy", "gradient", "texture", "saliency",
                                                                 "distance")}
    p = placement_map(maps)
    assert p.dtype == np.float32 and p.shape == (20, 30) and p.min() >= 0
    assert float(p.sum(dtype=np.float64)) == pytest.approx(1.0, abs=1e-5)
    expected = (0.30 * maps["entropy"] + 0.25 * maps["gradient"] + 0.20 * maps["texture"]
                + 0.15 * maps["saliency"] + 0.10 * maps["distance"]).astype(np.float64)
    np.testing.assert_allclose(p, expected / expected.sum(), rtol=1e-5)
    only = placement_map(maps, {"gradient": 2.0})
    np.testing.assert_allclose(only, maps["gradient"] / maps["gradient"].sum(dtype=np.float64), rtol=1e-5)


def test_placement_of_flat_maps_is_uniform_and_bad_weights_refused():
    zeros = {k: np.zeros((4, 5), np.float32) for k in ("entropy", "gradient", "texture", "saliency", "distance")}
    np.testing.assert_allclose(placement_map(zeros), 1 / 20)
    for bad in ({"entropy": -1.0}, {"entropy": 0.0}, {"segments": 1.0}, {"entropy": float("nan")}):
        with pytest.raises(PreprocessError):
            placement_map(zeros, bad)
    with pytest.raises(PreprocessError, match="needs the map"):
        placement_map({"entropy": zeros["entropy"]})
