"""`lgi dictco compress` reads images with the one LGI loader: 16-bit, EXIF, alpha, size limit, outputs."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from lgi_dictco.cli import dictco
from lgi_dictco.dcae import build_model, save_checkpoint
from lgi_dictco.dcae.io import load_image


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, build_model("dcae-tiny"), lmbda=0.0035, metric="mse")
    return path


def _one_line_error(res, *needles):
    assert res.exit_code != 0 and "Traceback" not in res.output, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), res.output
    for needle in needles:
        assert needle in lines[0], res.output


def test_16_bit_grayscale_keeps_its_values(tmp_path):
    """Pillow's convert('RGB') clipped 16-bit data to 255: the image became all white."""
    gray = np.linspace(1000, 30000, 24 * 32).reshape(24, 32).astype(np.uint16)
    Image.fromarray(gray).save(tmp_path / "g16.png")
    x = load_image(tmp_path / "g16.png")
    assert x.shape == (1, 3, 24, 32)
    expected = torch.from_numpy(gray.astype(np.float32) / np.float32(65535))
    for c in range(3):
        assert torch.allclose(x[0, c], expected, atol=1e-6)


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    img.save(tmp_path / "rot.jpg", exif=exif.tobytes())
    assert load_image(tmp_path / "rot.jpg").shape == (1, 3, 40, 20)


def test_alpha_is_composited_on_white(tmp_path):
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[..., 0] = 255
    rgba[:, 4:, 3] = 255  # left half fully transparent, right half opaque red
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    x = load_image(tmp_path / "a.png")[0]
    assert torch.equal(x[:, :, :4], torch.ones(3, 8, 4))
    assert torch.equal(x[:, :, 4:], torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1).expand(3, 8, 4))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width × height RGB pixels and holds almost none (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_a_too_large_image_is_one_clear_line(tmp_path, checkpoint, monkeypatch):
    from PIL import ImageFile

    (tmp_path / "huge.png").write_bytes(_png_header_only(20_000, 20_000))
    decoded = []  # pixel decodes: a refusal from the header makes none
    load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda im: decoded.append(im) or load(im))
    res = CliRunner().invoke(dictco, ["compress", str(tmp_path / "huge.png"), "-o", str(tmp_path / "x.dcae"),
                                      "--checkpoint", str(checkpoint)])
    _one_line_error(res, "huge.png", "20000x20000 = 400000000 pixels is more than the limit of 33554432 (--max-pixels")
    assert decoded == [] and not (tmp_path / "x.dcae").exists()


def test_compress_checks_its_output_before_any_work(tmp_path, checkpoint):
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(tmp_path / "in.png")
    (tmp_path / "a_file").write_text("x")
    res = CliRunner().invoke(dictco, ["compress", str(tmp_path / "in.png"), "-o", str(tmp_path / "a_file" / "x.dcae"),
                                      "--checkpoint", str(checkpoint)])
    _one_line_error(res, "is not a folder")
    out = tmp_path / "ro.dcae"
    out.write_bytes(b"keep me")
    out.chmod(0o444)
    args = ["compress", str(tmp_path / "in.png"), "-o", str(out), "--checkpoint", str(checkpoint)]
    _one_line_error(CliRunner().invoke(dictco, args), "read-only; pass --force")
    assert out.read_bytes() == b"keep me"
    res = CliRunner().invoke(dictco, [*args, "--force"])
    assert res.exit_code == 0, res.output
    assert out.read_bytes()[:4] == b"DCAE" and (out.stat().st_mode & 0o777) == 0o444


def test_without_the_loader_reading_an_image_says_what_to_install(tmp_path, monkeypatch):
    import importlib.metadata

    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "in.png")
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group=None: [])
    with pytest.raises(ValueError, match=r"pip install 'lgi-dictco\[images\]'"):
        load_image(tmp_path / "in.png")
