"""A fixed payload's bytes and decoded parameters, recorded once: moving code must not change a file."""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from lgi_dictco import lgi_format
from lgi_dictco.gauss import decode, encode, render
from lgi_dictco.lgi_format import GroupCoding, LgiHeader, LgiPayload, decode_lgi, dequantize, encode_lgi

# Recorded from the encoder before the codec moved into lgi_dictco.gauss (format 2.0).
BYTES_SHA256 = "2d0bb8f140b3cffe18b87cf1f77aed1e0bceea45f6a83c25f306254e54a513a7"
PARAMS_SHA256 = "da79a941369c454a099d6d1632e7f8d5e01928819ce8ba738d15a5190400f93e"


def golden_payload() -> LgiPayload:
    """Seven Gaussians, two precision classes, a shape codebook, opponent colour: every chunk is present."""
    classes = np.array([0, 1, 1, 0, 1, 0, 1])
    positions = np.array([[3, 5], [100, 40], [7, 200], [60, 1], [255, 255], [0, 0], [31, 64]])
    shape = GroupCoding(lo=np.array([-9.0, -1.5, -1.25], np.float32), step=np.array([0.25, 0.125, 0.1], np.float32),
                        levels=np.array([[40, 25, 26], [60, 30, 31]]),
                        codebook=np.array([[10, 12, 13], [20, 3, 24]]),
                        indices=np.array([0, 2, 1, 2, 0, 2, 2]),
                        scalars=np.array([[50, 29, 0], [5, 6, 7], [39, 0, 25], [11, 11, 11]]),
                        class_exp=np.array([1, -2]))
    color = GroupCoding(lo=np.array([0.0, -0.75, -0.5], np.float32), step=np.array([0.03, 0.03, 0.04], np.float32),
                        levels=np.array([[58, 50, 26], [64, 64, 40]]), codebook=np.zeros((0, 3), np.int64),
                        indices=None,
                        scalars=np.array([[1, 2, 3], [57, 0, 20], [30, 30, 30], [0, 49, 25], [63, 63, 39], [9, 8, 7],
                                          [44, 12, 33]]),
                        class_exp=np.array([2, 0]))
    header = LgiHeader(width=97, height=61, channels=3, color_space="opp", render_mode="topk", topk=7,
                       num_gaussians=7, pos_bits=(9, 8), class_drop=(1, 0))
    positions[classes == 0] >>= 1
    return LgiPayload(header=header, positions=positions, shape=shape, color=color, classes=classes)


def _params_digest(params: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in ("means", "scales", "rotations", "colors"):
        a = np.ascontiguousarray(params[name])
        assert a.dtype == np.float32
        h.update(name.encode() + str(a.shape).encode() + a.tobytes())
    return h.hexdigest()


def test_golden_bytes_and_params():
    data = encode_lgi(golden_payload())
    assert hashlib.sha256(data).hexdigest() == BYTES_SHA256
    assert _params_digest(dequantize(decode_lgi(data))) == PARAMS_SHA256


def test_old_import_path_is_the_same_codec():
    data = encode(golden_payload())
    assert data == lgi_format.encode_lgi(golden_payload())
    d = decode(data)
    old = lgi_format.dequantize(lgi_format.decode_lgi(data))
    assert d.header == d.payload.header and d.chunk_bytes == d.payload.chunk_bytes
    for k in ("means", "scales", "rotations", "colors"):
        assert np.array_equal(d.params[k], old[k])


def test_render_passes_the_header_and_clamps():
    d = decode(encode(golden_payload()))
    calls = []

    def rasterize(means, scales, rotations, colors, h, w, mode, k, backend):
        calls.append((means, h, w, mode, k, backend))
        return torch.full((h, w, colors.shape[1]), 2.0) - torch.arange(w)[None, :, None].float()

    img = render(d.params, d.header, 9, 5, rasterize=rasterize, backend="torch")
    assert img.shape == (3, 5, 9) and float(img.max()) == 1.0 and float(img.min()) == 0.0
    means, h, w, mode, k, backend = calls[0]
    assert (h, w, mode, k, backend) == (5, 9, "topk", 7, "torch")
    assert isinstance(means, torch.Tensor) and np.array_equal(means.numpy(), d.params["means"])
    # Tensors pass through; an empty set draws black without calling the renderer.
    tensors = {k: torch.from_numpy(v) for k, v in d.params.items()}
    assert torch.equal(render(tensors, d.header, 9, 5, rasterize=rasterize), img)
    empty = {k: v[:0] for k, v in d.params.items()}
    assert torch.equal(render(empty, d.header, 4, 3, rasterize=None), torch.zeros(3, 3, 4))
