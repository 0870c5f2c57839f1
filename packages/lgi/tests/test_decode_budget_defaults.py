"""The default decode budget (issue 41): it follows the output's size, every decoder applies it, a file just
under each ceiling decodes and one just over is refused in one line naming the argument that raises it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import lgi
import lgi_gsplat2d
from lgi.cli import cli
from lgi.decoding import DecodeError, info_report, prepare
from lgi_dictco.gauss import (
    GAUSSIANS_PER_PIXEL,
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


def forged(n: int, width: int, height: int, log_scale: float, mode: str = "topk", k: int = 10) -> bytes:
    """n identical Gaussians in one cell, of standard deviation exp(log_scale) (unit square): what a forger
    writes, a few hundred bytes for any n."""
    m = 2 * log_scale
    shape = GroupCoding(np.array([m, -1, -1], np.float32), np.full(3, 0.01, np.float32), np.full(3, 256),
                        np.zeros((0, 3), np.int64), None, np.zeros((n, 3), np.int64) + [0, 100, 100])
    color = GroupCoding(np.zeros(3, np.float32), np.full(3, 1 / 63, np.float32), np.full(3, 64),
                        np.zeros((0, 3), np.int64), None, np.full((n, 3), 20, np.int64))
    header = LgiHeader(width=width, height=height, channels=3, render_mode=mode, topk=k, num_gaussians=n,
                       pos_bits=(10, 10))
    return encode_lgi(LgiPayload(header, np.full((n, 2), 512, np.int64), shape, color))


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
    under = forged(MIN_GAUSSIANS, 64, 64, -40.0)
    over = forged(MIN_GAUSSIANS + 1, 64, 64, -40.0)
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


def _covering_count_at_the_limit(width: int, height: int, k: int) -> int:
    """The most canvas-covering Gaussians whose work fits the default ceiling at width x height."""
    tiles = math.ceil(width / 16) * math.ceil(height / 16)
    n = 1
    while math.ceil((n + 1) * tiles * work_weight(k)) <= WORK_PER_TILE * tiles + WORK_PER_GAUSSIAN * (n + 1):
        n += 1
    return n


@pytest.mark.parametrize("mode,k", [("topk", 10), ("topk", 32), ("sum", 10)])
def test_work_just_under_the_ceiling_decodes_and_just_over_is_refused(mode, k):
    slots = 0 if mode == "sum" else k
    n = _covering_count_at_the_limit(768, 512, slots)
    plan = prepare(forged(n, 768, 512, 2.0, mode, k))
    assert plan.cost.intersections == n * 48 * 32 and plan.work <= plan.limits[1]
    with pytest.raises(DecodeError, match=r"more than the work limit of \d+ \(`max_work`; raise it"):
        prepare(forged(n + 1, 768, 512, 2.0, mode, k))
    # Drawn larger, the allowance grows with the tiles (canvas-covering Gaussians cost the same per tile;
    # the per-Gaussian share of the allowance is spread thinner, so a few fewer fit).
    m = _covering_count_at_the_limit(1536, 1024, slots)
    twice = prepare(forged(m, 768, 512, 2.0, mode, k), scale=2)
    assert twice.limits[1] == WORK_PER_TILE * 96 * 64 + WORK_PER_GAUSSIAN * m and twice.work <= twice.limits[1]
    with pytest.raises(DecodeError, match="`max_work`"):
        prepare(forged(m + 1, 768, 512, 2.0, mode, k), scale=2)


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

    over = forged(MIN_GAUSSIANS + 1, 64, 64, -40.0)
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
