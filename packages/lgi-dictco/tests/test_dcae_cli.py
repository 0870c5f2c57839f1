"""`lgi dictco`: light import, round trips through files, one-line errors, eval CSV, train."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from lgi_dictco.cli import dictco
from lgi_dictco.dcae import build_model, decode, save_checkpoint
from lgi_dictco.dcae.io import load_image, to_uint8

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    model = build_model("dcae-tiny")
    save_checkpoint(root / "tiny.pt", model, lmbda=0.0035, metric="mse")
    rng = np.random.default_rng(1)
    images = root / "images"
    images.mkdir()
    for i, (h, w) in enumerate([(37, 53), (48, 64)]):
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(images / f"img{i}.png")
    (root / "fake.png").write_text("not an image")
    return root


def _run(*args):
    result = CliRunner().invoke(dictco, [str(a) for a in args], catch_exceptions=False)
    return result


def _compress(image, out, checkpoint, *more):
    """``lgi-dictco compress IMAGE -o OUT --checkpoint CHECKPOINT MORE...`` (no --checkpoint when None)."""
    return _run("compress", image, "-o", out, *(("--checkpoint", checkpoint) if checkpoint else ()), *more)


def _assert_one_line_error(result, *needles):
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    for needle in needles:
        assert needle in lines[0], result.output


def test_importing_the_cli_does_not_import_torch():
    code = (
        "import sys, lgi_dictco, lgi_dictco.cli; print('torch' in sys.modules, 'compressai' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_compress_decompress_round_trip(files, tmp_path):
    src = files / "images" / "img0.png"
    res = _compress(src, tmp_path / "a.dcae", files / "tiny.pt", "--json")
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    data = (tmp_path / "a.dcae").read_bytes()
    assert info["bytes"] == len(data) and (info["height"], info["width"]) == (37, 53)
    res = _run("decompress", tmp_path / "a.dcae", "-o", tmp_path / "b.png", "--checkpoint", files / "tiny.pt")
    assert res.exit_code == 0, res.output
    from lgi_dictco.dcae import load_model

    model, _ = load_model(files / "tiny.pt")
    expected, header = decode(model, data)
    written = np.asarray(Image.open(tmp_path / "b.png"))
    assert np.array_equal(written, to_uint8(expected))
    assert (header.lmbda, header.metric) == (0.0035, "mse")
    res = _run("info", tmp_path / "a.dcae", "--json")
    assert json.loads(res.output)["model"] == "dcae-tiny"


def test_checkpoint_from_environment(files, tmp_path, monkeypatch):
    monkeypatch.setenv("LGI_DICTCO_CHECKPOINT", str(files / "tiny.pt"))
    res = _compress(files / "images" / "img1.png", tmp_path / "c.dcae", None, "-q")
    assert res.exit_code == 0 and res.output == ""


def test_missing_checkpoint_is_one_clear_line(files, tmp_path):
    res = _compress(files / "images" / "img0.png", tmp_path / "x.dcae", tmp_path / "nope.pt")
    _assert_one_line_error(res, "checkpoint not found", "cannot be downloaded")
    assert not (tmp_path / "x.dcae").exists()


def test_not_a_checkpoint(files, tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"\0" * 100)
    res = _compress(files / "images" / "img0.png", tmp_path / "x.dcae", tmp_path / "junk.pt")
    _assert_one_line_error(res, "cannot read checkpoint")


def test_bad_image_is_one_clear_line(files, tmp_path):
    res = _compress(files / "fake.png", tmp_path / "x.dcae", files / "tiny.pt")
    _assert_one_line_error(res, "cannot read image")
    res = _compress(files / "missing.png", tmp_path / "x.dcae", files / "tiny.pt")
    _assert_one_line_error(res, "image not found")


def test_corrupted_file_is_one_clear_line(files, tmp_path):
    _compress(files / "images" / "img0.png", tmp_path / "a.dcae", files / "tiny.pt")
    data = bytearray((tmp_path / "a.dcae").read_bytes())
    data[-1] ^= 0x55
    (tmp_path / "bad.dcae").write_bytes(bytes(data))
    res = _run(
        "decompress", tmp_path / "bad.dcae", "-o", tmp_path / "o.png", "--checkpoint", files / "tiny.pt"
    )
    _assert_one_line_error(res, "bad.dcae", "CRC32 mismatch")
    assert not (tmp_path / "o.png").exists()
    res = _run("info", tmp_path / "bad.dcae")
    _assert_one_line_error(res, "corrupted")


def test_bad_device_is_a_usage_error(files, tmp_path):
    res = _compress(files / "images" / "img0.png", tmp_path / "x.dcae", files / "tiny.pt", "--device", "tpu:9")
    assert res.exit_code == 2 and "--device" in res.output and "Traceback" not in res.output


def test_eval_writes_csv(files, tmp_path):
    res = _run(
        "eval",
        "--checkpoint",
        files / "tiny.pt",
        "--data",
        files / "images",
        "--real",
        "-o",
        tmp_path / "r.csv",
        "--device",
        "cpu",
        "--json",
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)  # the progress bar goes to stderr, also under --json
    with open(tmp_path / "r.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["file"] for r in rows] == ["img0.png", "img1.png"]
    for col in ("bpp_est", "psnr", "ms_ssim", "bytes", "bpp", "encode_ms", "decode_ms", "matches_forward"):
        assert col in rows[0]
    assert all(r["matches_forward"] == "True" for r in rows)
    x = load_image(files / "images" / "img0.png")
    assert float(rows[0]["bpp"]) == pytest.approx(
        8 * int(rows[0]["bytes"]) / (x.shape[2] * x.shape[3]), rel=1e-5
    )
    assert out["mean"]["images"] == 2 and out["mean"]["matches_forward"] == 1.0


def test_train_command(files, tmp_path):
    res = _run(
        "train",
        "--data",
        files / "images",
        "--model",
        "dcae-tiny",
        "--patch-size",
        32,
        "--batch-size",
        1,
        "--epochs",
        1,
        "--max-steps",
        2,
        "--workers",
        0,
        "-o",
        tmp_path / "run",
        "-q",
        "--json",
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["steps"] == 2 and (tmp_path / "run" / "last.pt").is_file()
    res = _run("train", "--data", files / "images", "--milestones", "4O,45", "-o", tmp_path / "r2")
    assert res.exit_code == 2 and "--milestones" in res.output
    res = _run("train", "--data", files / "images", "--model", "dcae-huge", "-o", tmp_path / "r3")
    assert res.exit_code == 2 and "dcae-huge" in res.output


def test_models_lists_presets():
    res = _run("models", "--json")
    rows = json.loads(res.output)["models"]
    assert [(r["name"], r["id"]) for r in rows] == [
        ("dcae-paper", 1),
        ("dcae-moe-paper", 2),
        ("dcae-tiny", 3),
        ("dcae-moe-tiny", 4),
        ("dcae-small", 5),
    ]
    assert rows[0]["parameters"] == 119_400_351
    assert rows[-1]["parameters"] == 4_894_343


def test_umbrella_cli_exposes_dictco():
    out = subprocess.run(
        [sys.executable, "-m", "lgi.cli", "dictco", "--help"], capture_output=True, text=True
    )
    if out.returncode != 0 and "No module named" in out.stderr:
        pytest.skip("the lgi umbrella is not installed")
    assert out.returncode == 0 and "compress" in out.stdout and "decompress" in out.stdout
