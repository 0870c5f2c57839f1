"""The Python API (lgi.encode / decode / info): every accepted input, round trips, typed errors."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

import lgi
from lgi import api
from lgi_dictco import LgiFormatError


def psnr_u8(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255 ** 2 / mse)


FAST = {"effort": "fast"}


@pytest.fixture(scope="module")
def rgb_u8(pictures):
    picture, as_u8 = pictures
    return as_u8(picture())


@pytest.fixture(scope="module")
def encoded(rgb_u8):
    return lgi.encode_details(rgb_u8, bpp=2.0, **FAST)


def test_an_array_round_trips_at_or_under_its_size(rgb_u8, encoded):
    h, w = rgb_u8.shape[:2]
    assert len(encoded.data) <= 2.0 * h * w / 8
    out = lgi.decode(encoded.data)
    assert out.shape == (h, w, 3) and out.dtype == np.uint8
    assert psnr_u8(out, rgb_u8) == pytest.approx(encoded.psnr, abs=0.01)  # the PSNR it reports is the decode's
    assert encoded.psnr > 24
    assert encoded.report()["bytes"] == len(encoded.data) and encoded.gaussians == lgi.info(encoded.data).gaussians


def test_paths_pil_images_arrays_and_tensors_give_the_same_file(rgb_u8, encoded, tmp_path):
    path = tmp_path / "in.png"
    Image.fromarray(rgb_u8).save(path)
    same = [lgi.encode(path, bpp=2.0, **FAST), lgi.encode(str(path), bpp=2.0, **FAST),
            lgi.encode(Image.fromarray(rgb_u8), bpp=2.0, **FAST),
            lgi.encode(rgb_u8.astype(np.float64) / 255, bpp=2.0, **FAST),
            lgi.encode(torch.from_numpy(rgb_u8).permute(2, 0, 1).float() / 255, bpp=2.0, **FAST)]
    assert all(data == encoded.data for data in same)


def test_uint16_is_taken_at_its_depth(rgb_u8):
    x16 = (rgb_u8.astype(np.uint16) * 257)  # the same values in 16 bits: the same file
    assert lgi.encode(x16, gaussians=12, **FAST) == lgi.encode(rgb_u8, gaussians=12, **FAST)


@pytest.mark.parametrize("shape", [(23, 37), (23, 37, 1)])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_gray_arrays_of_any_size_stay_gray(shape, dtype, pictures):
    picture, as_u8 = pictures
    gray = picture(23, 37)[..., 0].reshape(shape)
    arr = {np.uint8: as_u8(gray), np.uint16: np.rint(gray * 65535).astype(np.uint16)}.get(dtype, gray.astype(dtype))
    data = lgi.encode(arr, gaussians=20, **FAST)
    out = lgi.decode(data)
    assert out.shape == (23, 37, 1) and lgi.info(data).channels == 1
    assert psnr_u8(out[..., 0], as_u8(gray.reshape(23, 37))) > 20


def test_an_rgb_image_whose_channels_are_equal_is_coded_gray(pictures):
    picture, as_u8 = pictures
    gray = as_u8(picture(24, 32)[..., 1])
    data = lgi.encode(np.repeat(gray[..., None], 3, axis=2), gaussians=10, **FAST)
    assert lgi.info(data).channels == 1


def test_decode_at_any_size_and_from_a_path(encoded, tmp_path):
    data = encoded.data
    assert lgi.decode(data, scale=2).shape == (96, 160, 3)
    assert lgi.decode(data, width=40).shape == (24, 40, 3)
    path = tmp_path / "x.lgi"
    path.write_bytes(data)
    assert np.array_equal(lgi.decode(path), lgi.decode(bytearray(data)))
    assert np.array_equal(lgi.decode(str(path), scale=0.5), lgi.decode(memoryview(data), scale=0.5))


def test_decode_equals_the_command_lines_png(encoded, tmp_path):
    from lgi.decoding import decode as decode_plan
    from lgi.decoding import to_uint8

    assert np.array_equal(lgi.decode(encoded.data), to_uint8(decode_plan(encoded.data).image))


def test_info_reads_the_header(encoded, rgb_u8):
    i = lgi.info(encoded.data)
    assert (i.width, i.height, i.channels, i.bytes) == (80, 48, 3, len(encoded.data))
    assert i.bpp == pytest.approx(len(encoded.data) * 8 / (80 * 48))
    assert i.details["chunks"]["HEAD"] > 0


def test_the_same_seed_gives_the_same_bytes_and_another_seed_others(rgb_u8, encoded):
    assert lgi.encode(rgb_u8, bpp=2.0, seed=0, **FAST) == encoded.data
    assert lgi.encode(rgb_u8, bpp=2.0, seed=1, **FAST) != encoded.data


def test_quality_presets_and_sizes(rgb_u8, pictures):
    picture, as_u8 = pictures
    bigger = as_u8(picture(96, 128))
    assert lgi.encode(bigger, quality="max", **FAST) == lgi.encode(bigger, bpp=1.5, **FAST)
    assert len(lgi.encode(rgb_u8, size=800, **FAST)) <= 800
    assert lgi.info(lgi.encode(rgb_u8, gaussians=9, **FAST)).gaussians == 9


def test_progress_reports_the_stages_in_order(rgb_u8):
    seen = []
    lgi.encode(rgb_u8, gaussians=10, progress=lambda stage, frac: seen.append(stage), **FAST)
    order = [name for name, _ in api.ENCODE_STAGES]
    firsts = list(dict.fromkeys(seen))
    assert firsts == [s for s in order if s in firsts] and {"fit", "finetune", "done"} <= set(firsts)


def test_the_apis_tables_are_the_encoders():
    from lgi_train.encode import QUALITY_BPP, STAGES

    assert api.QUALITIES == QUALITY_BPP  # the API's presets are the encoder's (kept apart: torch-free import)
    assert tuple(name for name, _ in api.ENCODE_STAGES) == tuple(STAGES)


BAD_IMAGES = [
    (np.zeros((8, 8, 5), np.uint8), lgi.ImageInputError, "shape"),
    (np.zeros((2, 8, 8, 3), np.uint8), lgi.ImageInputError, "shape"),
    (np.zeros((8, 8), np.int32), lgi.ImageInputError, "int32"),
    (np.full((8, 8), 1.5), lgi.ImageInputError, "in \\[0, 1\\]"),
    (np.full((8, 8), np.nan), lgi.ImageInputError, "NaN"),
    (np.zeros((0, 8)), lgi.ImageInputError, "no pixels"),
    ([[0.5, 0.5]], lgi.ImageInputError, "not list"),
    (torch.zeros(8, 8), lgi.ImageInputError, "tensor"),
    ("no/such/image.png", lgi.ImageInputError, "no such file"),
]


@pytest.mark.parametrize("image, error, message", BAD_IMAGES)
def test_bad_images_are_typed_errors(image, error, message):
    with pytest.raises(error, match=message):
        lgi.encode(image, **FAST)


def test_an_alpha_channel_is_composited_over_white_as_for_files(pictures):
    """One loader for every input: an (H, W, 4) array is taken as an RGBA PIL image (or PNG) would be."""
    picture, as_u8 = pictures
    rgba = np.concatenate([as_u8(picture()), np.tile(np.linspace(0, 255, 80, dtype=np.uint8), (48, 1))[..., None]], 2)
    data = lgi.encode(rgba, gaussians=12, **FAST)
    assert data == lgi.encode(Image.fromarray(rgba, "RGBA"), gaussians=12, **FAST)
    x = rgba.astype(np.float32) / np.float32(255)
    white = np.clip(x[..., :3] * x[..., 3:] + (1 - x[..., 3:]), 0, 1)  # over white, in float32 as the loader
    assert data == lgi.encode(white, gaussians=12, **FAST)


def test_a_file_that_is_not_an_image(tmp_path):
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(lgi.ImageInputError, match="not an image"):
        lgi.encode(tmp_path / "text.png")


def test_a_large_image_is_refused_from_its_header(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (300, 200)).save(path)
    for image in (path, Image.open(path), np.zeros((200, 300, 3), np.uint8)):
        with pytest.raises(lgi.LimitError, match="300x200 = 60000 pixels, more than the limit of 59999") as exc:
            lgi.encode(image, max_pixels=59_999)
        assert exc.value.option == "max_pixels"


@pytest.mark.parametrize("kwargs, message, option", [
    ({"bpp": 0.5, "size": 900}, "choose one of", "size"),
    ({"bpp": 0.0}, "`bpp` must be a number in \\(0, 24\\]", "bpp"),
    ({"bpp": "half"}, "`bpp` must be", "bpp"),
    ({"size": 0}, "`size` must be a whole number", "size"),
    ({"gaussians": 2.5}, "`gaussians` must be a whole number", "gaussians"),
    ({"quality": "best"}, "`quality` must be one of low, medium, high, max", "quality"),
    ({"effort": "extreme"}, "`effort` must be one of fast, default, max", "effort"),
    ({"device": "gpu"}, "is not a device", "device"),
    ({"progress": 3}, "`progress` is True", "progress"),
])
def test_bad_options_are_option_errors_naming_the_argument(rgb_u8, kwargs, message, option):
    with pytest.raises(lgi.OptionError, match=message) as exc:
        lgi.encode(rgb_u8, **kwargs)
    assert exc.value.option == option and "--" not in str(exc.value)


def test_an_unreachable_size_is_a_rate_target_error(rgb_u8):
    with pytest.raises(lgi.RateTargetError, match="smallest"):
        lgi.encode(rgb_u8, size=40)


def test_bad_files_are_format_errors(encoded):
    for data, message in ((b"", "only 0 bytes"), (b"GIF89a" + bytes(40), "magic"),
                          (encoded.data[:-9], "truncated"),
                          (encoded.data[:30] + bytes([encoded.data[30] ^ 1]) + encoded.data[31:], "CRC")):
        for call in (lgi.decode, lgi.info):
            with pytest.raises(lgi.FileFormatError, match=message) as exc:
                call(data)
            assert isinstance(exc.value, LgiFormatError) and isinstance(exc.value, lgi.LgiError)


def test_decode_limits_and_requests(encoded):
    with pytest.raises(lgi.LimitError, match="exceeds the decoder limit of 1000 pixels") as exc:
        lgi.decode(encoded.data, max_pixels=1000)
    assert exc.value.option == "max_pixels" and "--" not in str(exc.value)
    with pytest.raises(lgi.LimitError, match="more than the work limit of 5") as exc:
        lgi.decode(encoded.data, max_work=5)
    assert exc.value.option == "max_work"
    with pytest.raises(lgi.OptionError, match="give `scale` or `width`, not both"):
        lgi.decode(encoded.data, scale=2, width=10)
    with pytest.raises(lgi.OptionError, match="`scale` must be > 0"):
        lgi.decode(encoded.data, scale=-1)
    with pytest.raises(lgi.OptionError, match="`max_work` must be a whole number"):
        lgi.decode(encoded.data, max_work=0)
    with pytest.raises(lgi.OptionError, match="not int"):
        lgi.decode(12345)
    with pytest.raises(FileNotFoundError):
        lgi.decode("no/such/file.lgi")


def test_import_and_decode_need_no_torch(encoded, tmp_path):
    from lgi_gsplat2d import native

    if not native.available():
        pytest.skip("the native renderer is not built here")
    (tmp_path / "x.lgi").write_bytes(encoded.data)
    code = textwrap.dedent("""
        import json, sys
        import lgi
        imported = 'torch' in sys.modules
        out = lgi.decode(sys.argv[1], scale=2)
        print(json.dumps([imported, 'torch' in sys.modules, list(out.shape)]))
    """)
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path / "x.lgi")], capture_output=True, text=True,
                         check=True)
    assert json.loads(res.stdout) == [False, False, [96, 160, 3]]


def test_cli_messages_name_flags_where_the_api_names_arguments():
    from lgi.errors import cli_text

    assert cli_text("output 9x9 exceeds the limit (`max_pixels`)") == "output 9x9 exceeds the limit (--max-pixels)"
    assert cli_text("give `scale` or `width`") == "give --scale or --width"


def test_the_docstring_examples_run():
    import doctest

    result = doctest.testmod(api, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 6 and result.failed == 0
