"""Issue 14, "any image, any size": every command that reads an image refuses one above its pixel limit
(``--max-pixels``, defaults measured by benchmarks/bench_memory.py) from the header, before any work:
one line, exit 1, nothing written. The limit replaces Pillow's decompression-bomb guard in both
directions (a larger limit opens larger images)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lgi.cli import main


def _lgi(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp("limits") / "in.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(path)  # 768 pixels
    return path


@pytest.mark.parametrize("command", [
    ["encode", "{img}", "-o", "{out}/x.lgi", "--gaussians", "20", "--steps", "1000000"],
    ["fit", "{img}", "-o", "{out}/run", "-n", "20", "--steps", "1000000"],
    ["preprocess", "{img}", "-o", "{out}/maps"],
    ["dictco", "compress", "{img}", "-o", "{out}/x.dcae", "--checkpoint", "{out}/none.pt"],
    ["batch", "encode", "{dir}", "-o", "{out}/coded", "--gaussians", "20", "--steps", "1000000", "--jobs", "1"],
], ids=["encode", "fit", "preprocess", "dictco-compress", "batch-encode"])
def test_an_image_over_the_limit_is_refused_before_any_work(capsys, image, tmp_path, command, pixel_decodes):
    out = tmp_path / "out"
    out.mkdir()
    args = [a.format(img=image, out=out, dir=image.parent) for a in command] + ["--max-pixels", "767"]
    code, stdout, err = _lgi(capsys, *args)
    assert pixel_decodes == []  # refused from the header (--jobs 1: a batch's item runs in this process)
    assert code == 1, (stdout, err)
    if command[0] == "batch":  # a batch records the item as failed and goes on
        assert "768 pixels" in err and "767" in err, err
        assert not list((out / "coded").rglob("*.lgi"))
        return
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "32x24 = 768 pixels" in lines[0] and "767" in lines[0] and "--max-pixels" in lines[0], err
    assert "Traceback" not in err and not stdout
    assert not any(p.is_file() for p in out.rglob("*")), list(out.rglob("*"))


def test_at_the_limit_the_image_is_taken(capsys, image, tmp_path):
    code, _, err = _lgi(capsys, "encode", image, "-o", tmp_path / "x.lgi", "--gaussians", "20", "--steps", "3",
                        "--max-pixels", "768", "-q")
    assert code == 0 and (tmp_path / "x.lgi").stat().st_size > 0, err


def test_the_limit_replaces_pillows_guard_both_ways(image, monkeypatch):
    from PIL import Image as PILImage

    from lgi_preprocess import PreprocessError, load_image

    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 500)  # Pillow alone would refuse the 768 pixels
    with pytest.raises(PreprocessError, match="PIL.Image.MAX_IMAGE_PIXELS"):
        load_image(image)
    assert load_image(image, max_pixels=768).shape == (24, 32, 3)
    assert PILImage.MAX_IMAGE_PIXELS == 500  # put back
    with pytest.raises(PreprocessError, match="767"):
        load_image(image, max_pixels=767)
