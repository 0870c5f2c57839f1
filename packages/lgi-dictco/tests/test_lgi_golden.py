"""A fixed payload's bytes and decoded parameters, recorded once: moving code must not change a file."""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from lgi_dictco.gauss import decode, encode, render
from lgi_dictco.gauss.decoder import dequantize
from lgi_dictco.gauss.format import MAGIC, GroupCoding, LgiHeader, LgiPayload, decode_lgi, encode_lgi

# Recorded from the encoder before the codec moved into lgi_dictco.gauss (format 2.0, where this header's
# top-K mode was id 0, now "topk-hard"); format 2.1 writes the same bytes but for the minor version.
BYTES_SHA256_V20 = "2d0bb8f140b3cffe18b87cf1f77aed1e0bceea45f6a83c25f306254e54a513a7"
MEANS_SHA256 = "d032d8519a88d21e488283f104cc86c4b1e0391930dd2010d9691cc9de5f9cc7"
# Scales, rotations and colours pass through float32 exp / arctan2 / a 3x3 product, whose last bit
# may differ between CPUs (numpy picks SIMD code per machine): recorded to 9 digits, compared to 1e-6.
GOLDEN_FLOATS = {
    "scales": [[42.9996262, 2.79376626], [0.0998239294, 0.0424207002], [0.0347057767, 0.0208295248],
               [0.48154062, 0.132756978], [0.0377687514, 0.0129232574], [1.23630393, 0.117530376],
               [0.0998239294, 0.0424207002]],
    "rotations": [1.07579446, 0.379128873, -1.30357075, -0.662908852, -1.21521902, 0.997758925, 0.379128873],
    "colors": [[0.145345196, 0.262779325, 0.527182877], [-0.516980827, 0.246930122, 0.373973727],
               [2.16093612, -1.22474492, -0.936191261], [0.579413354, 0.742320001, 1.64007342],
               [0.821094215, 0.0925751403, 1.37263751], [0.911455035, -0.0519323349, 0.699323058],
               [2.33003688, 0.225705653, 0.717833459]],
}


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
    header = LgiHeader(width=97, height=61, channels=3, color_space="opp", render_mode="topk-hard", topk=7,
                       num_gaussians=7, pos_bits=(9, 8), class_drop=(1, 0))
    positions[classes == 0] >>= 1
    return LgiPayload(header=header, positions=positions, shape=shape, color=color, classes=classes)


def _check_params(params: dict[str, np.ndarray]) -> None:
    """Cell centres exactly (IEEE arithmetic only); the transcendental rest to 1e-6 of the record."""
    for name in ("means", "scales", "rotations", "colors"):
        assert params[name].dtype == np.float32, name
    means = np.ascontiguousarray(params["means"])
    assert hashlib.sha256(str(means.shape).encode() + means.tobytes()).hexdigest() == MEANS_SHA256
    for name, expected in GOLDEN_FLOATS.items():
        np.testing.assert_allclose(params[name], np.array(expected), rtol=1e-6, atol=1e-7, err_msg=name)


def _as_v20(data: bytes) -> bytes:
    """The same file with minor version 0 (the version bytes are outside every CRC)."""
    assert data[len(MAGIC)] == 2 and data[len(MAGIC) + 1] == 1
    return data[:len(MAGIC) + 1] + b"\x00" + data[len(MAGIC) + 2:]


def test_golden_bytes_and_params():
    data = encode_lgi(golden_payload())
    assert hashlib.sha256(_as_v20(data)).hexdigest() == BYTES_SHA256_V20
    _check_params(dequantize(decode_lgi(data)))


def test_a_format_20_file_decodes_as_before():
    """A 2.0 top-K file keeps its hard-cutoff blend: its mode id 0 reads as "topk-hard"."""
    old = decode_lgi(_as_v20(encode_lgi(golden_payload())))
    assert old.header.render_mode == "topk-hard"
    _check_params(dequantize(old))


def test_continuous_top_k_is_mode_2():
    payload = golden_payload()
    payload.header.render_mode = "topk"
    data = encode_lgi(payload)
    assert decode_lgi(data).header.render_mode == "topk"
    assert data != encode_lgi(golden_payload())


def test_public_pair_is_the_container_and_the_dequantizer():
    data = encode(golden_payload())
    assert data == encode_lgi(golden_payload())
    d = decode(data)
    old = dequantize(decode_lgi(data))
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
    assert (h, w, mode, k, backend) == (5, 9, "topk-hard", 7, "torch")
    assert isinstance(means, torch.Tensor) and np.array_equal(means.numpy(), d.params["means"])
    # Tensors pass through; an empty set draws black without calling the renderer.
    tensors = {k: torch.from_numpy(v) for k, v in d.params.items()}
    assert torch.equal(render(tensors, d.header, 9, 5, rasterize=rasterize), img)
    empty = {k: v[:0] for k, v in d.params.items()}
    assert torch.equal(render(empty, d.header, 4, 3, rasterize=None), torch.zeros(3, 3, 4))
