"""DCAE real bitstreams: bit-exact encode -> decode on odd sizes, batches, MoE, the .dcae glue."""

from __future__ import annotations

import pytest
import torch

from lgi_dictco.dcae import build_model, decode, encode, unpack
from lgi_dictco.dcae.model import get_scale_table
from lgi_dictco.errors import LgiFormatError

SIZES = [(37, 53), (64, 80), (1, 1), (17, 100)]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def _ready(name: str, seed: int = 0):
    torch.manual_seed(seed)
    model = build_model(name).eval()
    model.update()
    return model


@pytest.fixture(scope="module", params=["dcae-tiny", "dcae-moe-tiny"])
def model(request):
    return _ready(request.param)


@pytest.mark.parametrize("size", SIZES)
def test_compress_decompress_is_bit_exact(model, size):
    torch.manual_seed(1)
    x = torch.rand(1, 3, *size)
    out = model.compress(x)
    assert out["size"] == size and out["shape"] == (-(-size[0] // 16), -(-size[1] // 16))
    decoded = model.decompress(out["strings"], out["shape"], out["size"])["x_hat"]
    with torch.no_grad():
        expected = model(x)["x_hat"].clamp(0, 1)
    assert decoded.shape == x.shape
    assert torch.equal(decoded, expected)  # the decoder rebuilds exactly the encoder's latents
    again = model.compress(x)
    assert again["strings"] == out["strings"]  # deterministic bytes


def test_batches_are_coded_image_by_image(model):
    torch.manual_seed(2)
    x = torch.rand(3, 3, 40, 56)
    out = model.compress(x)
    assert [len(s) for s in out["strings"]] == [3, 3]
    batch = model.decompress(out["strings"], out["shape"], out["size"])["x_hat"]
    second = model.decompress([[out["strings"][0][1]], [out["strings"][1][1]]], out["shape"], out["size"])[
        "x_hat"
    ]
    assert torch.equal(batch[1:2], second)
    assert model.compress(x[1:2])["strings"] == [[out["strings"][0][1]], [out["strings"][1][1]]]


def test_real_size_matches_the_likelihood_estimate():
    """Bits written equal -log2 of the likelihoods up to coder overhead, when the predicted scales lie on
    the 64-level scale table (so the coder's quantised scales equal the model's)."""
    torch.manual_seed(3)
    model = build_model("dcae-tiny").eval()
    sigma = float(get_scale_table()[40])
    with torch.no_grad():
        for sl in model.slices:
            sl.scale[-1].weight.zero_()
            sl.scale[-1].bias.fill_(sigma)
    model.update()
    x = torch.rand(1, 3, 128, 192)
    with torch.no_grad():
        lik = model(x)["likelihoods"]
    estimated = {k: -torch.log2(v).sum().item() for k, v in lik.items()}
    out = model.compress(x)
    real_y, real_z = 8 * len(out["strings"][0][0]), 8 * len(out["strings"][1][0])
    assert real_y == pytest.approx(estimated["y"], rel=0.01)
    assert real_z == pytest.approx(estimated["z"], abs=64 + 0.02 * estimated["z"])


def test_dcae_bytes_round_trip(model):
    torch.manual_seed(4)
    x = torch.rand(3, 29, 45)
    data = encode(model, x, lmbda=0.0067, metric="mse")
    header, y, z = unpack(data)
    assert (header.height, header.width, header.lmbda, header.metric) == (29, 45, 0.0067, "mse")
    assert header.fingerprint == model.fingerprint()
    image, header2 = decode(model, data)
    assert header2 == header
    with torch.no_grad():
        assert torch.equal(image, model(x[None])["x_hat"].clamp(0, 1))


def test_decode_refuses_other_weights_and_other_models():
    a = _ready("dcae-tiny", seed=5)
    b = _ready("dcae-tiny", seed=6)
    data = encode(a, torch.rand(3, 20, 20))
    with pytest.raises(LgiFormatError, match="other dcae-tiny weights"):
        decode(b, data)
    with pytest.raises(LgiFormatError, match="coded by a dcae-tiny model, the checkpoint is dcae-moe-tiny"):
        decode(_ready("dcae-moe-tiny"), data)


def test_coding_needs_update():
    torch.manual_seed(7)
    fresh = build_model("dcae-tiny").eval()
    with pytest.raises(RuntimeError, match=r"call model.update\(\)"):
        fresh.compress(torch.rand(1, 3, 16, 16))


def test_decoding_runs_on_the_model_device(model):
    data = encode(model, torch.rand(3, 16, 32))
    image, _ = decode(model, data)
    assert image.device == model.device


def test_decompress_rejects_inconsistent_arguments(model):
    out = model.compress(torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="does not fit"):
        model.decompress(out["strings"], out["shape"], (40, 32))
    with pytest.raises(ValueError, match="y strings"):
        model.decompress([out["strings"][0] * 2, out["strings"][1]], out["shape"])
