"""Bounded `.lgi` decoding: the cost known before rendering, the budget (issue 41: it follows the request,
every decoder applies it, a file just under each ceiling decodes and one just over is refused in one line
naming the argument that raises it), and banded rendering."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import lgi
import lgi_gsplat2d
from lgi import decoding
from lgi.cli import cli
from lgi.decoding import DecodeError, info_report, prepare, render_plan, renderer, to_png_bytes, write_png
from lgi_dictco import LgiFormatError
from lgi_dictco.gauss import (
    GAUSSIANS_PER_PIXEL,
    MAX_OUTPUT_PIXELS,
    MIN_GAUSSIANS,
    WORK_PER_GAUSSIAN,
    WORK_PER_TILE,
    DecodeBudget,
    GroupCoding,
    LgiHeader,
    LgiPayload,
    encode_lgi,
    work_weight,
)
from lgi_gsplat2d import native


def make_file(n=200, width=120, height=80, *, log_scale=(-5.0, -2.0), mode="topk", k=10, channels=3, seed=0,
              same=False) -> bytes:
    """A .lgi file of n random Gaussians whose standard deviations lie in exp(log_scale) (unit square).

    ``same``: every Gaussian identical, in one cell (a forger's file: a few hundred bytes for any n).
    """
    rng = np.random.default_rng(seed)
    bits = 10
    lo_m, hi_m = 2 * log_scale[0], 2 * log_scale[1]
    a = hi_m - lo_m
    lo = np.array([lo_m, -a, -a], np.float32)
    step = np.array([(hi_m - lo_m) / 255, 2 * a / 255, 2 * a / 255], np.float32)
    shape_q = rng.integers(0, 256, (n, 3))
    col_q = rng.integers(0, 64, (n, channels))
    pos = rng.integers(0, 1 << bits, (n, 2))
    if same:
        shape_q[:], col_q[:], pos[:] = shape_q[0], col_q[0], pos[0]
    shape = GroupCoding(lo, step, np.full(3, 256), np.zeros((0, 3), np.int64), None, shape_q)
    color = GroupCoding(np.zeros(channels, np.float32), np.full(channels, 1 / 63, np.float32),
                        np.full(channels, 64), np.zeros((0, channels), np.int64), None, col_q)
    header = LgiHeader(width=width, height=height, channels=channels, render_mode=mode, topk=k,
                       color_space="rgb" if channels == 3 else "gray", num_gaussians=n, pos_bits=(bits, bits))
    return encode_lgi(LgiPayload(header, pos, shape, color))


def _exact_tiles(plan):
    """The rasterizer's own tile count per Gaussian and its pixel rows, at the plan's size."""
    p = {k: torch.as_tensor(v) for k, v in plan.params.items()}
    xys, radii, _, tiles = lgi_gsplat2d.project_gaussians_2d_scale_rot(p["means"], p["scales"], p["rotations"],
                                                                       plan.height, plan.width, backend="cpu")
    return xys, radii, tiles


@pytest.mark.parametrize("log_scale,size", [((-6, -3), (120, 80)), ((-3, 0.5), (97, 61)), ((-9, 3), (33, 200)),
                                            ((-1, 1), (1, 1))])
def test_the_work_bound_is_an_upper_bound_of_the_rasterizers_count(log_scale, size):
    for seed in range(3):
        data = make_file(n=300, width=size[0], height=size[1], log_scale=log_scale, seed=seed)
        for scale in (0.5, 1.0, 3.0):
            plan = prepare(data, scale)
            xys, radii, tiles = _exact_tiles(plan)
            exact = int(tiles.sum(dtype=torch.int64))
            assert exact <= plan.cost.intersections <= exact + 300 * 2 * (plan.width // 16 + plan.height // 16 + 4) + 300 * 4
            # Per row of tiles too (the band planner relies on it).
            i0 = torch.ceil(xys[:, 1].double() - radii.double() - 0.5).clamp(min=0).long() // 16
            i1 = torch.floor(xys[:, 1].double() + radii.double() - 0.5).clamp(max=plan.height - 1).long() // 16
            rows = np.zeros(plan.cost.row_intersections.size, np.int64)
            for g in torch.nonzero(tiles).squeeze(1).tolist():
                rows[int(i0[g]):int(i1[g]) + 1] += int(tiles[g]) // (int(i1[g]) - int(i0[g]) + 1)
            assert (rows <= plan.cost.row_intersections).all()


def test_canvas_covering_gaussians_cost_every_tile():
    data = make_file(n=50, width=100, height=40, log_scale=(3, 3.01), same=True)
    plan = prepare(data)
    assert plan.cost.intersections == 50 * 7 * 3  # 7 x 3 tiles of 16 x 16 cover 100 x 40
    _, _, tiles = _exact_tiles(plan)
    assert int(tiles.sum()) == plan.cost.intersections
    assert plan.work == 50 * 7 * 3 * 4  # top-K: each intersection is 4 units of work


@pytest.mark.parametrize("mode", ["topk", "sum"])
@pytest.mark.parametrize("band_rows", [1, 5, 16, 23])
def test_banded_render_equals_the_unbanded_render(mode, band_rows):
    data = make_file(n=400, width=150, height=90, log_scale=(-4, -1), mode=mode, k=4, seed=3)
    whole = prepare(data, 1.3)
    assert len(whole.bands) == 1
    ref = render_plan(whole, backend="cpu")
    banded = prepare(data, 1.3, band_rows=band_rows)
    assert len(banded.bands) == -(-whole.height // band_rows)
    img = render_plan(banded, backend="cpu")
    assert img.shape == ref.shape
    # Gaussians centred above a band are shifted by an integer with one rounding: float tolerance.
    torch.testing.assert_close(img, ref, rtol=0, atol=1e-5)
    # And with the reference backend, whose arithmetic is the same.
    torch.testing.assert_close(render_plan(banded, backend="torch"), render_plan(whole, backend="torch"),
                               rtol=0, atol=1e-5)


def test_bands_come_from_the_memory_budget_and_are_whole_tile_rows():
    data = make_file(n=300, width=200, height=300, log_scale=(-4, -2))
    plan = prepare(data, band_bytes=200 * 40 * 200)  # about 40 rows of 200 pixels at ~200 B a pixel
    assert len(plan.bands) > 3
    assert plan.bands[0][0] == 0 and plan.bands[-1][1] == plan.height
    for (a0, a1), (b0, _) in zip(plan.bands, plan.bands[1:]):
        assert a1 == b0 and a0 % 16 == 0 and (a1 - a0) % 16 == 0
    torch.testing.assert_close(render_plan(plan, backend="cpu"), render_plan(prepare(data), backend="cpu"),
                               rtol=0, atol=1e-5)


@pytest.mark.parametrize("channels", [3, 1])
def test_streamed_png_holds_the_unbanded_pixels(channels):
    data = make_file(n=300, width=90, height=70, log_scale=(-4, -1), channels=channels, seed=5)
    whole = prepare(data, 1.5)
    ref = np.asarray(Image.open(io.BytesIO(to_png_bytes(render_plan(whole, backend="cpu")))))
    buf = io.BytesIO()
    write_png(prepare(data, 1.5, band_rows=7), buf, backend="cpu")
    png = Image.open(io.BytesIO(buf.getvalue()))
    assert png.size == (whole.width, whole.height) and png.mode == ("RGB" if channels == 3 else "L")
    got = np.asarray(png)
    # The same 8-bit conversion of pixels equal to float rounding: at most one level apart, rarely.
    diff = np.abs(got.astype(int) - ref.astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def test_one_band_writes_todays_png_bytes():
    data = make_file(n=100, seed=2)
    plan = prepare(data)
    buf = io.BytesIO()
    write_png(plan, buf, backend="cpu")
    assert buf.getvalue() == to_png_bytes(decoding.decode(data, backend="cpu").image)


def test_budgets_refuse_before_rendering():
    data = make_file(n=64, width=64, height=64, log_scale=(2, 2.01), same=True)  # 64 canvas-covering
    plan = prepare(data)
    assert plan.cost.intersections == 64 * 16 and plan.work == 4096  # top-K: 4 units each
    assert plan.limits == (MIN_GAUSSIANS, WORK_PER_TILE * 16 + WORK_PER_GAUSSIAN * 64)
    with pytest.raises(DecodeError, match="needs up to 4096 units of work \\(1024 Gaussian-tile intersections\\), "
                                          "more than the work limit of 1000 \\(`max_work`") as refused:
        prepare(data, max_work=1000)
    assert refused.value.option == "max_work" and refused.value.limit
    with pytest.raises(DecodeError, match="exceeds the decoder limit of 4000 pixels \\(`max_pixels`\\)") as refused:
        prepare(data, max_pixels=4000)
    assert refused.value.option == "max_pixels" and refused.value.limit
    with pytest.raises(DecodeError, match="exceeds the decoder limit"):
        prepare(data, scale=1e300)
    with pytest.raises(DecodeError, match="`max_work` must be") as refused:
        prepare(data, max_work=0)
    assert refused.value.option == "max_work" and not refused.value.limit
    assert MAX_OUTPUT_PIXELS == decoding.MAX_OUTPUT_PIXELS


def test_a_forged_file_of_canvas_covering_gaussians_is_refused_by_default():
    """The issue's class: a few hundred bytes, 131,072 identical Gaussians covering a Kodak-sized canvas
    (about 100 s of top-K rendering here): refused with one line, before anything renders: by the count in
    its header; 43,690 of them (12.7 s summed under the old budget) by the work."""
    data = make_file(n=131072, width=768, height=512, log_scale=(2, 2.01), same=True)
    assert len(data) < 400
    with pytest.raises(DecodeError, match="the file holds 131072 Gaussians, more than the limit"):
        prepare(data)
    with pytest.raises(DecodeError, match="more than the work limit"):
        prepare(make_file(n=43690, width=768, height=512, log_scale=(2, 2.01), mode="sum", same=True))


def test_huge_colours_are_refused_after_the_transform():
    data = bytearray(make_file(n=10))
    payload = decoding_payload(bytes(data))
    payload.color.lo[:] = np.float32(1e7)
    with pytest.raises(LgiFormatError, match="beyond the decoder limit"):
        prepare(encode_lgi(payload))


def decoding_payload(data):
    from lgi_dictco.gauss import decode_lgi

    return decode_lgi(data)


def test_cli_refusals_are_one_line_and_write_nothing(tmp_path):
    src = tmp_path / "cover.lgi"
    src.write_bytes(make_file(n=64, width=64, height=64, log_scale=(2, 2.01), same=True))
    out = tmp_path / "out.png"
    runner = CliRunner()
    for flags, msg in ((["--max-work", "1000"], "more than the work limit of 1000"),
                       (["--max-pixels", "100"], "exceeds the decoder limit of 100 pixels"),
                       (["--scale", "1e200"], "exceeds the decoder limit")):
        r = runner.invoke(cli, ["decode", str(src), "-o", str(out), *flags])
        assert r.exit_code == 1, r.output
        assert msg in r.output and "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1
        assert not out.exists() and not list(tmp_path.glob(".out.png.*"))
    r = runner.invoke(cli, ["decode", str(src), "-o", str(out), "--max-work", "0"])
    assert r.exit_code == 2 and not out.exists()
    r = runner.invoke(cli, ["decode", str(src), "-o", str(out), "--json"])
    assert r.exit_code == 0, r.output
    assert '"work": 4096' in r.output and Image.open(out).size == (64, 64)


def test_decode_times_say_what_is_start_up(tmp_path):
    """The decode's own time is reported apart from loading torch and the kernels (start-up)."""
    import json

    src = tmp_path / "small.lgi"
    src.write_bytes(make_file(n=64, width=64, height=64, log_scale=(2, 2.01), same=True))
    r = CliRunner().invoke(cli, ["decode", str(src), "-o", str(tmp_path / "a.png"), "--json"])
    rec = json.loads(r.output)
    assert rec["decode_seconds"] > 0 and rec["startup_seconds"] >= 0
    assert rec["seconds"] == pytest.approx(rec["decode_seconds"] + rec["startup_seconds"], abs=2e-4)
    r = CliRunner().invoke(cli, ["decode", str(src), "-o", str(tmp_path / "b.png")])
    assert r.exit_code == 0 and "s start-up: loading the native renderer)" in r.output
    r = CliRunner().invoke(cli, ["decode", str(src), "-o", str(tmp_path / "c.png"), "--backend", "cpu"])
    assert r.exit_code == 0 and "s start-up: loading torch and its kernels)" in r.output


def test_cli_help_names_the_defaults():
    r = CliRunner().invoke(cli, ["decode", "--help"])
    text = " ".join(r.output.split())
    assert f"default {MAX_OUTPUT_PIXELS} = 2^28" in text
    assert f"default: {GAUSSIANS_PER_PIXEL} per pixel of the larger of the stored and the output size, at least {MIN_GAUSSIANS}" in text
    assert f"default: {WORK_PER_TILE} per 16x16 output tile + {WORK_PER_GAUSSIAN} per Gaussian" in text
    assert "times 4 for top-K files" in text and work_weight(10) == 4 and work_weight(0) == 1


def test_info_reports_the_decode_cost(tmp_path):
    src = tmp_path / "cover.lgi"
    src.write_bytes(make_file(n=64, width=64, height=64, log_scale=(2, 2.01), same=True))
    r = CliRunner().invoke(cli, ["info", str(src)])
    assert r.exit_code == 0, r.output
    assert "decode at stored size: 4096 units of work of the default limit 25600 (1024 Gaussian-tile intersections), 1 band(s)" in r.output


@pytest.mark.slow
def test_large_output_is_banded_and_streamed(tmp_path):
    """A 20 M pixel top-K decode: 15 bands, never the whole float image (peak RSS checked loosely). Its 2,000
    large Gaussians overlap ten times more than an encoder's file does (5,800 units of work per tile): the
    default budget refuses it, so the work limit is raised here."""
    src = tmp_path / "f.lgi"
    src.write_bytes(make_file(n=2000, width=600, height=400, log_scale=(-5, -2)))
    out = tmp_path / "big.png"
    code = ("import resource, sys; from lgi.cli import main\n"
            "assert main(['decode', sys.argv[1], '-o', sys.argv[2], '--scale', '9', '--json', '--max-work', '1000000000']) == 0\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    r = subprocess.run([sys.executable, "-c", code, str(src), str(out)], capture_output=True, text=True, check=True)
    peak_kib = int(r.stdout.strip().splitlines()[-1])
    assert '"bands": ' in r.stdout and Image.open(out).size == (5400, 3600)
    # Unbanded, top-K K=10 alone would hold 19.4 M x (12 + 84) B = 1.9 GB.
    assert peak_kib < 1_500_000


# --- the torch-free renderer (lgi_gsplat2d.native): `lgi decode` without torch ----------------------------

@pytest.fixture(scope="module")
def native_lib():
    return native.library_origin()  # built into the run's cache on first use; a failure fails the tests


def _png(plan, backend) -> bytes:
    buf = io.BytesIO()
    write_png(plan, buf, backend=backend)
    return buf.getvalue()


@pytest.mark.parametrize("mode,channels", [("topk", 3), ("sum", 3), ("topk-hard", 3), ("topk", 1)])
def test_native_png_is_the_torch_kernels_png(native_lib, mode, channels):
    data = make_file(n=300, width=110, height=75, log_scale=(-4, -1), mode=mode, channels=channels, seed=4)
    plan = prepare(data, 1.3)
    assert renderer("cpu", "auto") == "native"
    assert _png(plan, "native") == _png(plan, "cpu") == to_png_bytes(render_plan(plan, backend="cpu"))
    # The tensor API draws with it too, to the same bits.
    assert np.array_equal(render_plan(plan, backend="native").numpy(), render_plan(plan, backend="cpu").numpy())


def test_native_bands_stream_the_same_pixels(native_lib):
    data = make_file(n=300, width=90, height=70, log_scale=(-4, -1), seed=5)
    banded = prepare(data, 1.5, band_rows=7)
    native_png = np.asarray(Image.open(io.BytesIO(_png(banded, "native"))))
    torch_png = np.asarray(Image.open(io.BytesIO(_png(banded, "cpu"))))
    # Both shift each band's centres by y0 in float32 the same way: the same bytes.
    assert np.array_equal(native_png, torch_png)


def test_native_on_a_gpu_is_a_clear_error():
    with pytest.raises(DecodeError, match="draws on the CPU"):
        renderer("cuda", "native")


def test_lgi_decode_loads_no_torch(native_lib, tmp_path):
    src, out = tmp_path / "x.lgi", tmp_path / "x.png"
    data = make_file(n=200, width=96, height=64, seed=1)
    src.write_bytes(data)
    code = ("import sys\nfrom lgi.cli import main\n"
            f"rc = main(['decode', {str(src)!r}, '-o', {str(out)!r}, '--json'])\n"
            "print('torch' in sys.modules, rc, file=sys.stderr)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ)
    assert res.returncode == 0, res.stderr
    assert res.stderr.strip().splitlines()[-1] == "False 0"
    report = json.loads(res.stdout)
    assert report["renderer"] == "native" and report["width"] == 96
    assert out.read_bytes() == _png(prepare(data), "cpu")


def test_the_tile_is_named_once_and_mirrored_where_a_leaf_cannot_import_it():
    """lgi_gsplat2d.TILE is the rasterizer's kTile; lgi-dictco (a leaf) prices work with its own copy."""
    import re

    from lgi_dictco.gauss import decoder

    common = (Path(lgi_gsplat2d.__file__).parent / "csrc" / "common.h").read_text()
    assert int(re.search(r"constexpr int kTile = (\d+);", common).group(1)) == lgi_gsplat2d.TILE == decoder.TILE


def test_the_blend_modes_have_one_numbering_the_files():
    """The kernels number the blend modes as the .lgi format does (lgi_dictco.gauss.RENDER_MODES): the
    Python table (lgi_gsplat2d.native.MODES) and the C++ enum (csrc/common.h: Mode) both."""
    import re

    from lgi_dictco.gauss import RENDER_MODES
    from lgi_gsplat2d.native import MODES

    assert {v: k for k, v in RENDER_MODES.items()} == MODES
    common = (Path(lgi_gsplat2d.__file__).parent / "csrc" / "common.h").read_text()
    enum = dict(re.findall(r"kMode(\w+) = (\d+)", common))
    assert {"topk-hard": int(enum["TopkHard"]), "sum": int(enum["Sum"]), "topk": int(enum["Topk"])} == MODES


# --- the default budget (issue 41): it follows the request; just under each ceiling decodes, one over is refused

def test_the_defaults_follow_the_request():
    budget = DecodeBudget()
    assert budget.gaussian_limit(768 * 512, 768 * 512) == max(MIN_GAUSSIANS, int(GAUSSIANS_PER_PIXEL * 768 * 512))
    assert budget.gaussian_limit(64 * 64, 4096 * 4096) == int(GAUSSIANS_PER_PIXEL * 4096 * 4096)  # drawn larger
    assert budget.gaussian_limit(64 * 64, 16) == MIN_GAUSSIANS
    assert budget.work_limit(768, 512, 5000) == WORK_PER_TILE * 48 * 32 + WORK_PER_GAUSSIAN * 5000
    assert budget.work_limit(17, 1, 0) == WORK_PER_TILE * 2  # partial tiles count whole
    assert DecodeBudget(max_gaussians=7, max_work=9).gaussian_limit(1, 1) == 7
    assert DecodeBudget(max_gaussians=7, max_work=9).work_limit(1, 1, 1) == 9
    assert work_weight(0) == 1 and work_weight(6) == work_weight(32) == 4


def test_a_count_just_under_the_ceiling_decodes_and_one_over_is_refused_from_the_header(monkeypatch):
    """64x64 of invisible Gaussians: the limit there is MIN_GAUSSIANS. Over it, no stream is decoded."""
    under = invisible(MIN_GAUSSIANS)
    over = invisible(MIN_GAUSSIANS + 1)
    assert prepare(under).header.num_gaussians == MIN_GAUSSIANS
    import lgi_dictco.gauss as gauss

    def no_streams(data):
        raise AssertionError("decoded the streams of a file refused by its header")

    monkeypatch.setattr(gauss, "decode_lgi", no_streams)
    with pytest.raises(DecodeError, match=f"the file holds {MIN_GAUSSIANS + 1} Gaussians, more than the limit of "
                                          f"{MIN_GAUSSIANS} for a 64x64 image drawn at 64x64 \\(`max_gaussians`"):
        prepare(over)
    report = info_report(over)  # `lgi info` describes it from its header, as a decode would refuse it
    assert report["groups"] is None and "`max_gaussians`" in report["decode"]["error"]
    monkeypatch.undo()
    assert prepare(over, max_gaussians=MIN_GAUSSIANS + 1).header.num_gaussians == MIN_GAUSSIANS + 1


def _covering_count_at_the_limit(width: int, height: int, slots: int) -> int:
    """The most canvas-covering Gaussians whose work fits the default ceiling at width x height: n with
    n·tiles·weight <= WORK_PER_TILE·tiles + WORK_PER_GAUSSIAN·n (integers, so a floor division)."""
    tiles = math.ceil(width / 16) * math.ceil(height / 16)
    return WORK_PER_TILE * tiles // (tiles * work_weight(slots) - WORK_PER_GAUSSIAN)


def covering(n: int, mode: str, k: int) -> bytes:
    """n identical canvas-covering Gaussians on a 768x512 canvas (a few hundred bytes for any n)."""
    return make_file(n=n, width=768, height=512, log_scale=(2, 2.01), mode=mode, k=k, same=True)


def invisible(n: int) -> bytes:
    """n identical Gaussians far smaller than a pixel, on a 64x64 canvas."""
    return make_file(n=n, width=64, height=64, log_scale=(-40, -39.9), same=True)


@pytest.mark.parametrize("mode,k", [("topk", 10), ("topk", 32), ("sum", 10)])
def test_work_just_under_the_ceiling_decodes_and_just_over_is_refused(mode, k):
    slots = 0 if mode == "sum" else k
    n = _covering_count_at_the_limit(768, 512, slots)
    plan = prepare(covering(n, mode, k))
    assert plan.cost.intersections == n * 48 * 32 and plan.work <= plan.limits[1]
    with pytest.raises(DecodeError, match=r"more than the work limit of \d+ \(`max_work`; raise it"):
        prepare(covering(n + 1, mode, k))
    # Drawn larger, the allowance grows with the tiles (canvas-covering Gaussians cost the same per tile;
    # the per-Gaussian share of the allowance is spread thinner, so a few fewer fit).
    m = _covering_count_at_the_limit(1536, 1024, slots)
    twice = prepare(covering(m, mode, k), scale=2)
    assert twice.limits[1] == WORK_PER_TILE * 96 * 64 + WORK_PER_GAUSSIAN * m and twice.work <= twice.limits[1]
    with pytest.raises(DecodeError, match="`max_work`"):
        prepare(covering(m + 1, mode, k), scale=2)


def test_the_priced_work_is_the_renderers_count_on_real_files(pictures):
    """On the encoder's own files the bound is tight: the rasterizer's exact count (its tile lists) is
    at most the priced intersections and within 15 % of them, at three output sizes."""
    picture, as_u8 = pictures
    data = lgi.encode(as_u8(picture(96, 128)), bpp=1.0, effort="fast")
    for scale in (0.5, 1.0, 3.0):
        plan = prepare(data, scale)
        p = {key: torch.as_tensor(v) for key, v in plan.params.items()}
        _, _, _, tiles = lgi_gsplat2d.project_gaussians_2d_scale_rot(p["means"], p["scales"], p["rotations"],
                                                                     plan.height, plan.width, backend="cpu")
        exact = int(tiles.sum(dtype=torch.int64))
        assert exact <= plan.cost.intersections <= 1.15 * exact + 16, (scale, exact, plan.cost.intersections)


def test_every_decoder_applies_the_budget(tmp_path):
    """The API, Pillow, `lgi decode` and `lgi info` refuse the same over-count file with the same limit."""
    from PIL import Image

    over = invisible(MIN_GAUSSIANS + 1)
    path = tmp_path / "over.lgi"
    path.write_bytes(over)
    with pytest.raises(lgi.LimitError, match="more than the limit of 65536") as exc:
        lgi.decode(over)
    assert exc.value.option == "max_gaussians"
    im = Image.open(path)  # the header opens; drawing it is what the budget refuses
    with pytest.raises(lgi.LimitError, match="`max_gaussians`"):
        im.load()
    r = CliRunner().invoke(cli, ["decode", str(path), "-o", str(tmp_path / "x.png")])
    assert r.exit_code == 1 and "(--max-gaussians; raise it" in r.output and not (tmp_path / "x.png").exists()
    r = CliRunner().invoke(cli, ["decode", str(path), "-o", str(tmp_path / "x.png"), "--max-gaussians", "65537"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["info", str(path)])
    assert r.exit_code == 0 and "decode: refused (the file holds 65537 Gaussians" in r.output
    assert lgi.info(over).details["decode"]["gaussian_limit"] == MIN_GAUSSIANS
