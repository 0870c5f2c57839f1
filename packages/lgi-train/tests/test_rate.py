"""The rate term of fine-tuning: its estimate is the coder's rate, its gradient goes to cheaper symbols,
and fine-tuning with it gives smaller files."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lgi_dictco.bitio import read_varint
from lgi_dictco.entropy import FrequencyTable, encode_stream
from lgi_dictco.gauss.format import encode_lgi
from lgi_train.compress.codec import CodecSettings, QuantizedSet, finetune
from lgi_train.compress.rate import GroupRate, SetRate
from lgi_train.model import GaussianModel


class _OneStream(torch.nn.Module):
    """The fields of a codec group that GroupRate reads: one class, one dimension, step 1."""

    def __init__(self, values: torch.Tensor, levels: int):
        super().__init__()
        n = values.shape[0]
        self.own_values = torch.nn.Parameter(values.float()[:, None])
        self.own = torch.ones(n, dtype=torch.bool)
        self.classes = torch.zeros(n, dtype=torch.long)
        self.lo = torch.zeros(1)
        self.steps = torch.ones(1, 1)
        self.levels = torch.full((1, 1), float(levels))
        self.own_classes = self.classes
        self.own_steps = self.steps[self.own_classes]
        self.own_levels = self.levels[self.own_classes]


def test_estimate_is_the_coders_code_length():
    """On grid values the estimate is the coder's own code length (the same probabilities: the stream's
    FrequencyTable), and the rANS payload is within 1 % of it; the stream's model and framing are the
    fixed part the rate term does not price (no value moves them but by the alphabet's extent)."""
    rng = np.random.default_rng(0)
    for scale, n in ((3.0, 20000), (0.7, 5000), (9.0, 3000)):
        symbols = np.clip(np.round(rng.laplace(32, scale, n)), 0, 63).astype(np.int64)
        est = float(GroupRate(_OneStream(torch.from_numpy(symbols), 64)).bits().detach())
        assert est == pytest.approx(FrequencyTable.from_symbols(symbols, 64).cost_bits(symbols), rel=1e-6)
        stream = encode_stream(symbols, 64)
        model_bytes, pos = read_varint(stream, 1, "stream", limit=len(stream))
        payload_bytes, pos = read_varint(stream, pos + model_bytes, "stream", limit=len(stream))
        assert pos + payload_bytes == len(stream)
        assert abs(payload_bytes * 8 / est - 1) < 0.01, (scale, n, est, payload_bytes * 8)
        assert len(stream) - payload_bytes < 40  # kind, the model, two lengths


def test_a_symbol_the_stream_lacks_costs_what_one_occurrence_would():
    symbols = np.array([5] * 90 + [6] * 10)
    bits = FrequencyTable.from_symbols(symbols, 16).code_lengths()
    with_one = FrequencyTable.from_symbols(np.append(symbols, 7), 16).code_lengths()
    assert bits[7] == pytest.approx(with_one[7], rel=0.02) and bits[0] == bits[7] > bits[6] > bits[5]


def test_gradient_points_to_the_more_frequent_symbol():
    values = torch.tensor([5.0] * 90 + [6.0] * 10 + [5.4, 5.6])
    group = _OneStream(values, 16)
    GroupRate(group).bits().backward()
    grad = group.own_values.grad[:, 0]
    # Between 5 (frequent) and 6 (rare), descending the bits moves the value down towards 5.
    assert float(grad[-2]) > 0 and float(grad[-1]) > 0


def _fitted(n=400, seed=0) -> tuple[GaussianModel, torch.Tensor]:
    """A set and the image it renders: a perfect fit in floats, which quantization then disturbs."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g)
    scales = torch.full((n, 2), 0.06) * torch.exp(0.3 * torch.randn(n, 2, generator=g))
    rot = torch.rand(n, generator=g) * math.pi
    colors = 0.1 + 0.2 * torch.rand(n, 3, generator=g)
    model = GaussianModel(xy, scales, rot, colors, render_mode="sum")
    with torch.no_grad():
        target = model.render(40, 48)
    return model, target


def _finetuned(rate_db: float) -> tuple[float, float]:
    """(bpp, PSNR) of the file after fine-tuning with the rate term at ``rate_db``."""
    model, target = _fitted()
    qs = QuantizedSet(model, 40, 48, CodecSettings(precision_classes=1, color_step=0.01, shape_step=(0.05,) * 3))
    lrs = {"xy": 1e-4, "shape": 5e-3, "color": 5e-3}
    finetune(qs, target, 30, lrs, lambda x, y: ((x - y) ** 2).mean(), rate_db=rate_db)
    with torch.no_grad():
        mse = float(((qs.render() - target) ** 2).mean())
    return len(encode_lgi(qs.to_payload())) * 8 / (40 * 48), -10 * math.log10(mse)


def test_rate_term_buys_a_better_trade():
    """With a price of λ dB per bpp the file is smaller and −PSNR + λ·bpp, the objective, is lower.

    (At small prices Adam's normalized steps move values that the error barely holds by more than
    the price asks, so this toy fit, perfect before quantization, is priced high.)
    """
    lam = 20.0
    plain_bpp, plain_psnr = _finetuned(0.0)
    rated_bpp, rated_psnr = _finetuned(lam)
    assert rated_bpp < 0.95 * plain_bpp, (rated_bpp, plain_bpp)
    assert -rated_psnr + lam * rated_bpp < -plain_psnr + lam * plain_bpp, (rated_bpp, rated_psnr, plain_bpp, plain_psnr)


def test_set_rate_counts_shape_and_colour():
    model, _ = _fitted(n=40)
    qs = QuantizedSet(model, 40, 48, CodecSettings(precision_classes=2))
    bpp = SetRate(qs).bpp()
    assert bpp.requires_grad and 0 < float(bpp) < 40 * 6 * 13 / (40 * 48)
