"""Image loading (every input mode, limits, bad files), array conversion and atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lgi_preprocess import PreprocessError, as_rgb_float, load_image
from lgi_preprocess._io import save_npy, write_text


def _check_rgb(a: np.ndarray, shape: tuple[int, int]) -> None:
    assert a.dtype == np.float32 and a.shape == (*shape, 3)
    assert a.min() >= 0.0 and a.max() <= 1.0


def test_rgb_png_round_trip(tmp_path):
    data = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(data).save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png")
    _check_rgb(out, (20, 30))
    np.testing.assert_array_equal(np.round(out * 255).astype(np.uint8), data)
    np.testing.assert_array_equal(load_image(str(tmp_path / "a.png")), out)  # str paths too


@pytest.mark.parametrize("background", [(1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (0.2, 0.4, 0.6)])
def test_rgba_composited_on_background(tmp_path, background):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255  # red
    rgba[0, :, 3] = 255  # opaque row
    rgba[1, :, 3] = 0  # transparent row
    rgba[2, :, 3] = 128  # half row
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png", background=background)
    _check_rgb(out, (4, 4))
    np.testing.assert_allclose(out[0], np.tile([1.0, 0.0, 0.0], (4, 1)), atol=1e-6)
    np.testing.assert_allclose(out[1], np.tile(background, (4, 1)), atol=1e-6)
    a = 128 / 255
    np.testing.assert_allclose(out[2], np.tile(np.array([1.0, 0, 0]) * a + np.array(background) * (1 - a), (4, 1)),
                               atol=1e-6)


def test_default_background_is_white(tmp_path):
    Image.new("RGBA", (3, 3), (10, 20, 30, 0)).save(tmp_path / "t.png")
    np.testing.assert_allclose(load_image(tmp_path / "t.png"), 1.0)


def test_grayscale_and_bilevel(tmp_path):
    g = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    Image.fromarray(g, "L").save(tmp_path / "g.png")
    out = load_image(tmp_path / "g.png")
    _check_rgb(out, (8, 8))
    np.testing.assert_allclose(out[..., 0], g / 255, atol=1e-6)
    assert np.array_equal(out[..., 0], out[..., 2])
    Image.fromarray(g > 100).save(tmp_path / "b.png")  # mode "1"
    assert set(np.unique(load_image(tmp_path / "b.png"))) == {0.0, 1.0}


def test_palette_with_and_without_transparency(tmp_path):
    p = Image.new("P", (4, 2))
    p.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 9))
    p.putdata([0, 1, 2, 1, 1, 1, 2, 2])
    p.save(tmp_path / "p.png")
    out = load_image(tmp_path / "p.png")
    np.testing.assert_allclose(out[0, 1], [1, 0, 0])
    np.testing.assert_allclose(out[0, 2], [0, 1, 0])
    p.save(tmp_path / "pt.png", transparency=0)  # index 0 transparent → background
    out = load_image(tmp_path / "pt.png", background=(0.0, 0.0, 1.0))
    np.testing.assert_allclose(out[0, 0], [0, 0, 1])
    np.testing.assert_allclose(out[0, 1], [1, 0, 0])


def test_16bit_grayscale_keeps_precision(tmp_path):
    g = np.array([[0, 1, 257, 65535]], dtype=np.uint16)
    Image.fromarray(g).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    out = load_image(tmp_path / "g16.png")
    np.testing.assert_allclose(out[0, :, 0], g[0] / 65535, rtol=1e-6, atol=1e-9)
    assert out[0, 1, 0] > 0  # 1/65535 would be 0 after an 8-bit truncation


def test_16bit_rgb_and_rgba_png_decoded_at_full_depth(tmp_path):
    import cv2

    rgb16 = np.random.default_rng(1).integers(0, 65536, (5, 6, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "c16.png"), rgb16[..., ::-1])  # OpenCV writes BGR
    out = load_image(tmp_path / "c16.png")
    np.testing.assert_allclose(out, rgb16 / 65535, atol=1e-6)
    rgba16 = np.concatenate([rgb16, np.full((5, 6, 1), 0, np.uint16)], axis=2)
    rgba16[0, :, 3] = 65535
    cv2.imwrite(str(tmp_path / "c16a.png"), rgba16[..., [2, 1, 0, 3]])
    out = load_image(tmp_path / "c16a.png", background=(0.0, 0.0, 0.0))
    np.testing.assert_allclose(out[0], rgb16[0] / 65535, atol=1e-6)
    np.testing.assert_allclose(out[1:], 0.0, atol=1e-6)


def test_32bit_int_and_float_modes():
    i = Image.fromarray(np.array([[0, 32768, 70000]], dtype=np.int32), "I")
    np.testing.assert_allclose(load_image(i)[0, :, 0], [0, 32768 / 65535, 1.0], rtol=1e-6)
    f = Image.fromarray(np.array([[0.25, 2.0]], dtype=np.float32), "F")
    np.testing.assert_allclose(load_image(f)[0, :, 0], [0.25, 1.0])


def test_cmyk_jpeg_and_pil_input(tmp_path):
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "c.jpg")  # red in CMYK
    out = load_image(tmp_path / "c.jpg")
    _check_rgb(out, (8, 8))
    assert out[..., 0].mean() > 0.9 and out[..., 1].mean() < 0.1
    pil = Image.new("RGB", (5, 3), (0, 128, 255))
    np.testing.assert_allclose(load_image(pil)[1, 1], [0, 128 / 255, 1.0], atol=1e-6)


def test_exif_orientation_applied(tmp_path):
    img = Image.new("RGB", (6, 2), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    img.save(tmp_path / "o.jpg", exif=exif)
    assert load_image(tmp_path / "o.jpg").shape == (6, 2, 3)


@pytest.mark.parametrize("case,message", [
    ("missing", "no such file"),
    ("empty", "0 bytes"),
    ("text", "not an image"),
    ("truncated", "truncated"),
    ("directory", "directory"),
])
def test_bad_files_raise_one_line(tmp_path, case, message, bad_image):
    path = bad_image(tmp_path / f"{case}.png", case)
    with pytest.raises(PreprocessError, match=message) as info:
        load_image(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_pixel_limit_is_pillows_guard(tmp_path, monkeypatch):
    Image.new("RGB", (20, 10)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 199)
    with pytest.raises(PreprocessError, match="exceeds the limit of 199"):
        load_image(tmp_path / "big.png")
    with pytest.raises(PreprocessError, match="exceeds the limit"):
        load_image(Image.new("RGB", (20, 10)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200)
    assert load_image(tmp_path / "big.png").shape == (10, 20, 3)


def test_as_rgb_float_dtypes_and_refusals():
    u8 = np.full((2, 3, 3), 255, np.uint8)
    np.testing.assert_array_equal(as_rgb_float(u8), 1.0)
    np.testing.assert_allclose(as_rgb_float(np.full((2, 2), 65535, np.uint16)), 1.0)
    assert as_rgb_float(np.zeros((2, 2), np.float64)).shape == (2, 2, 3)
    with pytest.raises(PreprocessError, match=r"\[0, 1\]"):
        as_rgb_float(np.full((2, 2, 3), 255.0))  # float 0..255 is refused, never rescaled silently
    with pytest.raises(PreprocessError, match="NaN"):
        as_rgb_float(np.full((2, 2, 3), np.nan))
    with pytest.raises(PreprocessError, match="shape"):
        as_rgb_float(np.zeros((2, 2, 5)))
    with pytest.raises(PreprocessError, match="no pixels"):
        as_rgb_float(np.zeros((0, 4, 3)))


def test_atomic_write_replaces_and_cleans_up(tmp_path, monkeypatch):
    target = tmp_path / "x.npy"
    save_npy(target, np.arange(3))
    np.testing.assert_array_equal(np.load(target), np.arange(3))
    assert oct(target.stat().st_mode & 0o777) != oct(0o600)  # not mkstemp's private mode

    real_save = np.save

    def failing_save(f, arr, allow_pickle=False):
        real_save(f, arr[: len(arr) // 2], allow_pickle=allow_pickle)  # half written, then the crash
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", failing_save)
    with pytest.raises(KeyboardInterrupt):
        save_npy(target, np.arange(1000))
    monkeypatch.undo()
    np.testing.assert_array_equal(np.load(target), np.arange(3))  # the old file is intact
    assert sorted(os.listdir(tmp_path)) == ["x.npy"]  # no temporary file left behind
    write_text(tmp_path / "sub" / "m.json", "{}")
    assert Path(tmp_path / "sub" / "m.json").read_text() == "{}"


def test_a_killed_writers_temporaries_are_swept_by_the_next_write(tmp_path):
    import os
    import time

    from lgi_preprocess._io import STALE_SECONDS, save_npy

    out = tmp_path / "a_gradient.npy"
    stale, fresh, other = (tmp_path / ".a_gradient.npy.x1.tmp", tmp_path / ".a_gradient.npy.x2.tmp",
                           tmp_path / ".b_gradient.npy.x3.tmp")
    for p in (stale, fresh, other):
        p.write_bytes(b"partial")
    old = time.time() - STALE_SECONDS - 60
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    save_npy(out, np.zeros(3))
    assert not stale.exists()  # a killed writer's, an hour old
    assert fresh.exists()      # possibly a live writer's
    assert other.exists()      # another file's: not this write's business
    assert sorted(p.name for p in tmp_path.iterdir()) == [".a_gradient.npy.x2.tmp", ".b_gradient.npy.x3.tmp",
                                                          "a_gradient.npy"]
