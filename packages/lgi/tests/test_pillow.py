"""The Pillow plugin (lgi.pillow): open lazily, draft, load, save with each option, refusals."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import lgi
from lgi import pillow as plugin

FAST = {"effort": "fast"}


@pytest.fixture(scope="module")
def rgb(pictures):
    picture, as_u8 = pictures
    return Image.fromarray(as_u8(picture()))


@pytest.fixture(scope="module")
def lgi_file(rgb, tmp_path_factory):
    path = tmp_path_factory.mktemp("pillow") / "photo.lgi"
    rgb.save(path, bpp=2.0, **FAST)
    return path


def test_the_format_is_registered():
    assert Image.registered_extensions()[".lgi"] == "LGI"
    assert Image.MIME["LGI"] == "image/x-lgi"
    assert "LGI" in Image.OPEN and "LGI" in Image.SAVE


def test_open_reads_the_size_from_the_header_without_drawing(lgi_file, monkeypatch):
    def no_decoding(*args, **kwargs):
        raise AssertionError("opened an image by drawing it")

    monkeypatch.setattr(lgi.api, "decode", no_decoding)
    with Image.open(lgi_file) as im:
        assert (im.format, im.size, im.mode) == ("LGI", (80, 48), "RGB")
        assert im.info["gaussians"] == lgi.info(lgi_file).gaussians


def test_load_equals_lgi_decode(lgi_file):
    with Image.open(lgi_file) as im:
        assert np.array_equal(np.asarray(im), lgi.decode(lgi_file))


def test_draft_draws_at_the_smallest_size_covering_the_box(lgi_file):
    with Image.open(lgi_file) as im:
        mode, box = im.draft(None, (30, 10))
        assert im.size == (30, 18) and box == (0, 0, 30, 18) and mode == "RGB"
        assert np.array_equal(np.asarray(im), lgi.decode(lgi_file, width=30))
        assert im.draft(None, (10, 10)) is None  # once drawn, as Pillow's JPEG draft
    with Image.open(lgi_file) as im:
        im.draft(None, (800, 800))  # never larger than stored: that is lgi.pillow.open(scale=...)
        assert im.size == (80, 48)
    with Image.open(lgi_file) as im:
        im.thumbnail((20, 20))
        assert im.size == (20, 12)


def test_open_at_any_scale(lgi_file):
    big = plugin.open(lgi_file, scale=3)
    assert big.size == (240, 144) and np.array_equal(np.asarray(big), lgi.decode(lgi_file, scale=3))
    assert plugin.open(lgi_file, width=100).size == (100, 60)
    with pytest.raises(lgi.OptionError, match="not both"):
        plugin.open(lgi_file, scale=2, width=10)


def test_save_with_each_option_gives_the_apis_file(rgb, tmp_path):
    array = np.asarray(rgb)
    for options in ({"bpp": 2.0}, {"size": 900}, {"gaussians": 30}, {"quality": "max", "seed": 1},
                    {"bpp": 2.0, "effort": "default"}):
        buf = io.BytesIO()
        rgb.save(buf, format="LGI", **({"effort": "fast"} | options))
        assert buf.getvalue() == lgi.encode(array, **({"effort": "fast"} | options)), options
    rgb.save(tmp_path / "by-extension.lgi", gaussians=30, **FAST)
    assert (tmp_path / "by-extension.lgi").read_bytes() == lgi.encode(array, gaussians=30, **FAST)


def test_modes_are_converted_or_refused(rgb, tmp_path):
    gray = rgb.convert("L")
    gray.save(tmp_path / "g.lgi", gaussians=20, **FAST)
    assert Image.open(tmp_path / "g.lgi").mode == "L"
    palette = rgb.convert("P")
    palette.save(tmp_path / "p.lgi", gaussians=20, **FAST)
    assert (tmp_path / "p.lgi").read_bytes() == lgi.encode(np.asarray(palette.convert("RGB")), gaussians=20, **FAST)
    for im in (rgb.convert("RGBA"), rgb.convert("LA"), _transparent_palette(rgb)):
        with pytest.raises(lgi.ImageInputError, match=f"cannot write mode {im.mode} as LGI: it stores no alpha"):
            im.save(tmp_path / "alpha.lgi")
        assert not (tmp_path / "alpha.lgi").exists()
    with pytest.raises(lgi.OptionError, match="not with optimize"):
        rgb.save(tmp_path / "bad.lgi", optimize=True)
    assert not (tmp_path / "bad.lgi").exists()


def _transparent_palette(rgb):
    p = rgb.convert("P")
    p.info["transparency"] = 0
    return p


def test_damaged_files_raise_a_clear_error(lgi_file):
    data = lgi_file.read_bytes()
    with pytest.raises(lgi.FileFormatError, match="truncated"):
        Image.open(io.BytesIO(data[:len(data) // 2]))
    with pytest.raises(lgi.FileFormatError, match="CRC"):
        Image.open(io.BytesIO(data[:30] + bytes([data[30] ^ 1]) + data[31:]))


def test_other_formats_still_open(rgb):
    buf = io.BytesIO()
    rgb.save(buf, format="PNG")
    assert Image.open(buf).format == "PNG"
