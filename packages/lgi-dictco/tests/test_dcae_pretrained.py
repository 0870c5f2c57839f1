"""The DCAE weights shipped in the package: manifest, checksums, loading, and the CLI without a checkpoint."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from lgi_dictco.cli import dictco
from lgi_dictco.dcae import decode, encode, load_checkpoint, pretrained, save_checkpoint
from lgi_dictco.dcae.config import config_from_state_dict
from lgi_dictco.dcae.registry import get_config

KODAK = Path(__file__).resolve().parents[4] / "shared" / "data" / "kodak"


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    """A 96x128 photo-like image: smooth gradients, edges and some texture."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:96, 0:128].astype(np.float64)
    img = np.stack([120 + 80 * np.sin(xx / 13), 100 + 60 * np.cos(yy / 9), 90 + 0.8 * xx], -1)
    img[30:60, 40:90] = [200, 60, 40]
    img += rng.normal(0, 4, img.shape)
    path = tmp_path_factory.mktemp("pretrained") / "photo.png"
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
    return path


def _run(*args):
    return CliRunner().invoke(dictco, [str(a) for a in args], catch_exceptions=False)


def test_manifest_describes_every_shipped_file():
    models = pretrained.list_pretrained()
    assert len(models) >= 4
    assert [m.quality for m in models] == list(range(1, len(models) + 1))
    assert pretrained.DEFAULT_QUALITY in pretrained.qualities()
    lambdas = [m.lmbda for m in models]
    assert lambdas == sorted(lambdas) and len(set(lambdas)) == len(lambdas)
    rates = [m.kodak["bpp"] for m in models]
    assert rates == sorted(rates)  # a higher level spends more bits on Kodak …
    assert [m.kodak["psnr"] for m in models] == sorted(m.kodak["psnr"] for m in models)  # … and gains quality
    assert len({m.fingerprint for m in models}) == len(models)
    total = 0
    for m in models:
        assert m.preset == "dcae-small" and m.path.is_file()
        assert pretrained.sha256_of(m.path) == m.sha256
        total += m.path.stat().st_size
    assert total < 45e6  # the wheel's budget is 50 MB with the code


def test_shipped_files_are_float16_state_dicts_of_the_preset():
    m = pretrained.list_pretrained()[0]
    state = torch.load(m.path, map_location="cpu", weights_only=True)
    model, _ = pretrained.load_pretrained(m.quality)
    params = dict(model.named_parameters())
    assert all(state[k].dtype == torch.float16 for k in params)
    assert config_from_state_dict({k: v.float() for k, v in state.items()}) == get_config(m.preset)
    # Buffers stay float32: float16 would make the 1e-9 likelihood floor 0 (and rate estimates infinite).
    assert state["gaussian_conditional.likelihood_lower_bound.bound"].dtype == torch.float32
    assert float(model.gaussian_conditional.likelihood_lower_bound.bound) == pytest.approx(1e-9)
    with torch.no_grad():
        out = model(torch.rand(1, 3, 64, 64))
    assert all(bool((lik >= 1e-9).all()) for lik in out["likelihoods"].values())


@pytest.mark.parametrize("quality", [1, 4])
def test_loading_verifies_and_reproduces_the_fingerprint(quality):
    model, entry = pretrained.load_pretrained(quality)
    assert entry.quality == quality and model.fingerprint() == entry.fingerprint
    assert not model.training and all(p.dtype == torch.float32 for p in model.parameters())
    assert pretrained.find_by_fingerprint(entry.fingerprint) == entry
    assert pretrained.find_by_fingerprint(entry.fingerprint ^ 1) is None


def test_altered_weights_are_refused(tmp_path, monkeypatch):
    m = pretrained.list_pretrained()[0]
    shutil.copytree(pretrained.WEIGHTS, tmp_path / "weights")
    data = bytearray((tmp_path / "weights" / m.file).read_bytes())
    data[len(data) // 2] ^= 0x01
    (tmp_path / "weights" / m.file).write_bytes(bytes(data))
    monkeypatch.setattr(pretrained, "WEIGHTS", tmp_path / "weights")
    with pytest.raises(pretrained.PretrainedError, match="checksum"):
        pretrained.load_pretrained(m.quality)
    # Weights of other sizes under the right checksum (a manifest out of step with its files).
    from lgi_dictco.dcae import build_model

    torch.save(build_model("dcae-tiny").state_dict(), tmp_path / "weights" / m.file)
    forged = dataclasses.replace(m, sha256=pretrained.sha256_of(tmp_path / "weights" / m.file))
    monkeypatch.setattr(pretrained, "get", lambda q: forged)
    with pytest.raises(pretrained.PretrainedError, match="do not fit"):
        pretrained.load_pretrained(m.quality)
    monkeypatch.undo()
    monkeypatch.setattr(pretrained, "WEIGHTS", tmp_path / "weights")
    (tmp_path / "weights" / m.file).unlink()
    with pytest.raises(pretrained.PretrainedError, match="missing"):
        pretrained.load_pretrained(m.quality)
    with pytest.raises(pretrained.PretrainedError, match="levels: 1, 2"):
        pretrained.get(99)


def test_cli_round_trip_without_a_checkpoint(image, tmp_path):
    res = _run("compress", image, "-o", tmp_path / "a.dcae", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    data = (tmp_path / "a.dcae").read_bytes()
    assert out["bytes"] == len(data) and out["bpp"] == pytest.approx(8 * len(data) / (96 * 128))
    assert out["model"] == f"dcae-small q{pretrained.DEFAULT_QUALITY}"
    res = _run("decompress", tmp_path / "a.dcae", "-o", tmp_path / "b.png")
    assert res.exit_code == 0, res.output
    # The CLI's image is the library's decode of the same bytes, and that is the encoder's reconstruction.
    model, _ = pretrained.load_pretrained(pretrained.DEFAULT_QUALITY)
    x_hat, header = decode(model, data)
    assert header.fingerprint == model.fingerprint()
    expected = x_hat[0].clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert np.array_equal(np.asarray(Image.open(tmp_path / "b.png")), expected)
    x = torch.from_numpy(np.asarray(Image.open(image), dtype=np.float32) / 255).permute(2, 0, 1)[None]
    with torch.no_grad():
        forward = model(x)["x_hat"].clamp(0, 1)
    assert torch.equal(x_hat, forward)
    assert encode(model, x, lmbda=pretrained.get(pretrained.DEFAULT_QUALITY).lmbda, metric="mse") == data


def test_quality_levels_order_the_file_sizes(image, tmp_path):
    sizes = []
    for q in (1, pretrained.qualities()[-1]):
        res = _run("compress", image, "-o", tmp_path / f"q{q}.dcae", "--quality", q, "--json")
        assert res.exit_code == 0, res.output
        sizes.append(json.loads(res.output)["bytes"])
    assert sizes[0] < sizes[1]


def test_cli_errors_are_one_line(image, tmp_path):
    res = _run("compress", image, "-o", tmp_path / "x.dcae", "--quality", 99)
    assert res.exit_code != 0 and "no shipped DCAE model of quality 99" in res.output
    res = _run("compress", image, "-o", tmp_path / "x.dcae", "--quality", 1, "--checkpoint", tmp_path / "c.pt")
    assert res.exit_code != 0 and "not both" in res.output
    assert not (tmp_path / "x.dcae").exists()


def test_a_file_of_other_weights_needs_its_checkpoint(image, tmp_path):
    model, entry = pretrained.load_pretrained(1)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.0001)
    model.reset_fingerprint()
    model.update(force=True)
    x = torch.from_numpy(np.asarray(Image.open(image), dtype=np.float32) / 255).permute(2, 0, 1)
    (tmp_path / "other.dcae").write_bytes(encode(model, x))
    res = _run("decompress", tmp_path / "other.dcae", "-o", tmp_path / "o.png")
    assert res.exit_code != 0 and "does not ship" in res.output and "--checkpoint" in res.output
    save_checkpoint(tmp_path / "other.pt", model, lmbda=entry.lmbda, metric="mse")
    assert load_checkpoint(tmp_path / "other.pt")["model_name"] == "dcae-small"
    res = _run("decompress", tmp_path / "other.dcae", "-o", tmp_path / "o.png", "--checkpoint", tmp_path / "other.pt")
    assert res.exit_code == 0, res.output


def test_models_lists_the_shipped_weights():
    res = _run("models", "--json")
    assert res.exit_code == 0, res.output
    shipped = json.loads(res.output)["shipped"]
    assert [s["quality"] for s in shipped] == pretrained.qualities()
    assert sum(s["default"] for s in shipped) == 1
    text = _run("models").output
    assert "q1  dcae-small" in text and "bpp" in text and "(default)" in text


@pytest.mark.skipif(not (KODAK / "kodim23.png").is_file(), reason="../shared/data/kodak not beside the checkout")
def test_default_model_beats_jpeg_at_equal_size_on_a_kodak_crop():
    """The behaviour the weights are shipped for, on an image they were not trained on."""
    ref = np.asarray(Image.open(KODAK / "kodim23.png").convert("RGB"))[128:384, 256:512]
    model, entry = pretrained.load_pretrained(pretrained.DEFAULT_QUALITY)
    x = torch.from_numpy(ref.astype(np.float32) / 255).permute(2, 0, 1)
    data = encode(model, x, lmbda=entry.lmbda, metric="mse")
    x_hat, _ = decode(model, data)
    dec = x_hat[0].mul(255).round().permute(1, 2, 0).numpy()

    def psnr(a):
        return 10 * np.log10(255**2 / np.mean((a.astype(np.float64) - ref) ** 2))

    # The best JPEG that is no larger than the .dcae file.
    best_jpeg = -np.inf
    for q in range(5, 100):
        buf = io.BytesIO()
        Image.fromarray(ref).save(buf, format="JPEG", quality=q)
        if len(buf.getvalue()) > len(data):
            break
        best_jpeg = psnr(np.asarray(Image.open(io.BytesIO(buf.getvalue()))))
    assert psnr(dec) > best_jpeg
