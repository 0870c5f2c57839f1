"""`lgi app` without a browser: the page's computations (lgi.compare, lgi.decoding.decode_window) against
the CLI and the full-resolution decoder, bad uploads, and the message when Gradio is missing.
The page in a real browser is tested in test_app_browser.py."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from lgi.cli import cli
from lgi.compare import (
    AppInputError,
    compare,
    draw_ellipses,
    load_image,
    load_rd_curves,
    raster_view,
    rd_figure,
    results_rows,
    view_size,
    window,
)
from lgi.decoding import decode, decode_window
from lgi.peers import PEERS
from lgi_train.compress.codec import CodecSettings
from lgi_train.compress.encoder import EncodeOptions, encode_image


def small_image(h=48, w=72, seed=0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([xx, yy, 0.5 + 0.4 * np.sin(9 * xx) * np.cos(7 * yy)], axis=0)
    img[:, h // 4: h // 2, w // 5: w // 2] = np.array([0.9, 0.2, 0.1])[:, None, None]
    return torch.from_numpy(np.clip(img + rng.normal(0, 0.01, img.shape), 0, 1).astype(np.float32))


@pytest.fixture(scope="module")
def lgi_bytes() -> bytes:
    opts = EncodeOptions(codec=CodecSettings(finetune_steps=15), fit_steps=30, refit_steps=5, num_gaussians=60)
    return encode_image(small_image(), opts).data


@pytest.mark.parametrize("x0,y0", [(0.0, 0.0), (0.5, 0.5), (0.25, 0.5)])
def test_zoomed_window_is_the_crop_of_the_decode_at_that_scale(lgi_bytes, x0, y0):
    full = decode(lgi_bytes, scale=4).image                                   # [3, 192, 288]
    win = decode_window(lgi_bytes, x0, y0, zoom=2, width=144, height=96).image
    r, c = round(y0 * 192), round(x0 * 288)
    torch.testing.assert_close(win, full[:, r:r + 96, c:c + 144], rtol=1e-4, atol=2e-5)


def test_window_at_zoom_one_is_the_decode(lgi_bytes):
    torch.testing.assert_close(decode_window(lgi_bytes, 0, 0, 1, 72, 48).image, decode(lgi_bytes).image,
                               rtol=1e-5, atol=1e-6)


def test_window_stays_inside_the_image():
    assert window(0.5, 0.5, 1) == (0.0, 0.0)
    assert window(0.0, 1.0, 4) == (0.0, 0.75)
    assert window(0.9, 0.3, 2) == pytest.approx((0.5, 0.05))
    with pytest.raises(AppInputError):
        window(0.5, 0.5, 0.5)


def test_raster_view_magnifies_pixels_as_they_are():
    img = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    view = raster_view(img, 0.5, 0.5, 2, 12, 8)                               # bottom-right quarter, 4x
    assert view.shape == (8, 12, 3)
    np.testing.assert_array_equal(view[::4, ::4], img[2:, 3:])
    np.testing.assert_array_equal(view, np.repeat(np.repeat(img[2:, 3:], 4, 0), 4, 1))


def test_view_size_keeps_the_aspect_within_bounds():
    assert view_size(768, 512) == (768, 512)
    assert view_size(64, 64) == (384, 384)
    assert view_size(2048, 1024) == (768, 384)


def test_overlay_draws_the_one_sigma_ellipse_where_the_gaussian_is():
    img = np.zeros((100, 100, 3), np.uint8)
    params = {"means": np.array([[0.5, 0.5], [3.0, 3.0]]), "scales": np.array([[0.2, 0.1], [0.1, 0.1]]),
              "rotations": np.array([0.0, 0.0])}
    def near(lit, r, c):                                                      # within a pixel (line rounding)
        return bool(lit[r - 1:r + 2, c - 1:c + 2].any())

    lit = draw_ellipses(img, params, 0.0, 0.0, 1.0).sum(2) > 0
    assert near(lit, 50, 70) and near(lit, 50, 30) and near(lit, 40, 50) and near(lit, 60, 50)  # 20 px by 10 px
    assert not near(lit, 50, 50) and not lit[:20, :20].any()                  # outline only; off-view one not drawn
    zoomed = draw_ellipses(img, params, 0.25, 0.25, 2.0).sum(2) > 0           # centre at (50, 50) again, 2x
    assert near(zoomed, 50, 90) and near(zoomed, 30, 50) and not near(zoomed, 50, 70)


def _png(tmp_path, name, image: torch.Tensor):
    path = tmp_path / name
    Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(path)
    return path


def test_app_figures_equal_the_cli(tmp_path):
    """The page's LGI row is what `lgi encode --json` prints for the same image and settings."""
    src = _png(tmp_path, "img.png", small_image(48, 64, seed=3))
    res = CliRunner().invoke(cli, ["encode", str(src), "-o", str(tmp_path / "cli.lgi"), "--gaussians", "40",
                                   "--effort", "fast", "--steps", "40", "--json"])
    assert res.exit_code == 0, res.output
    cli_report = json.loads(res.stdout)  # progress goes to stderr, also under --json
    stages = []
    c = compare(load_image(src, 10_000), gaussians=40, effort="fast", steps=40,
                on_stage=lambda name, frac: stages.append(name))
    assert c.lgi.data == (tmp_path / "cli.lgi").read_bytes()
    for key in ("bytes", "bpp", "psnr", "gaussians", "width", "height"):
        assert c.report[key] == cli_report[key], key
    assert {"fit", "quantize", "entropy-code", "peers"} <= set(stages)
    rows = {r[0]: r for r in results_rows(c)}
    assert rows["LGI"][1] == str(cli_report["bytes"]) and rows["LGI"][3] == f"{cli_report['psnr']:.2f}"
    for peer in c.peers:         # at the same size or under, unless even the lowest quality is larger
        lowest = PEERS[peer.name.lower()].qualities[0]
        assert peer.bytes <= c.lgi.bytes or peer.setting == f"quality {lowest}", (peer.name, peer.bytes)
        assert 10 < peer.psnr < 60 and math.isnan(peer.ms_ssim)               # 48 px: no MS-SSIM
    assert [p.name for p in c.peers] == ["JPEG", "WebP", "AVIF"]
    fig = rd_figure(c)
    assert len(fig.axes[0].lines) == len(load_rd_curves()) + 4                # Kodak curves + this image's 4 points


def test_rd_curves_cover_every_codec():
    curves = load_rd_curves()
    assert {"lgi", "lgi-v2", "jpeg", "webp", "avif", "jxl"} <= set(curves)
    for pts in curves.values():
        assert [p[0] for p in pts] == sorted(p[0] for p in pts) and all(10 < p[1] < 60 for p in pts)


def test_bad_uploads_get_the_clis_message(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(AppInputError, match="notes.png"):
        load_image(text, 10_000)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(AppInputError, match="empty"):
        load_image(empty, 10_000)
    with pytest.raises(AppInputError, match="upload an image"):
        load_image(None, 10_000)
    big = _png(tmp_path, "big.png", small_image(120, 100))
    with pytest.raises(AppInputError, match=r"100x120 = 12,000 pixels.*at most 10,000.*--max-pixels"):
        load_image(big, 10_000)


def test_impossible_target_is_an_app_error(tmp_path):
    with pytest.raises(AppInputError, match=r"below the smallest \.lgi file"):
        compare(small_image(), bpp=0.01, effort="fast", steps=5)


def test_app_command_without_gradio_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gradio", None)                          # import gradio -> ImportError
    res = CliRunner().invoke(cli, ["app"])
    assert res.exit_code == 1
    assert "pip install 'lgi[app]'" in res.output


@pytest.mark.parametrize("args,message", [(["--max-pixels", "0"], "--max-pixels"), (["--steps", "0"], "--steps"),
                                          (["--device", "gpu"], "--device")])
def test_app_command_rejects_bad_flags(args, message):
    res = CliRunner().invoke(cli, ["app", *args])
    assert res.exit_code == 2 and message in res.output


def test_encodes_and_decodes_share_one_queue_slot():
    """Two users never run two encodes (or an encode and a decode) at once on the machine's cores."""
    pytest.importorskip("gradio", reason="Gradio is not installed (pip install 'lgi[app]')")
    from lgi.app import build_app

    demo = build_app()
    fns = {f.name: f for f in demo.fns.values()}
    assert fns["on_encode"].concurrency_limit == fns["on_decode"].concurrency_limit == 1
    assert fns["on_encode"].concurrency_id == fns["on_decode"].concurrency_id
