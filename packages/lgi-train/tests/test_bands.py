"""Large images train in bands of rows (lgi_train.bands): the same steps, sensitivities and renders as
the whole image's, to float rounding. BAND_PIXELS is lowered so that small images take the banded path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lgi_train.bands as bands
from lgi_train.bands import row_bands
from lgi_train.compress.codec import CodecSettings, QuantizedSet, finetune, render_decoded
from lgi_train.compress.sensitivity import calc_sensitivity
from lgi_train.config import FitConfig
from lgi_train.fit import Fitter
from lgi_train.losses import make_loss, pixel_sum_for
from lgi_train.model import ATTRIBUTES

H, W = 44, 64
SMALL_BANDS = 16 * W  # bands of 16 rows: (0, 16), (16, 32), (32, 44)


def _image(h=H, w=W, seed=0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([xx, yy, 0.5 + 0.4 * np.sin(13 * xx) * np.cos(8 * yy)])
    img[:, h // 3: h // 2, w // 4: w // 2] = np.array([0.9, 0.2, 0.1])[:, None, None]
    return torch.from_numpy(np.clip(img + rng.normal(0, 0.02, img.shape), 0, 1).astype(np.float32))


@pytest.fixture
def banded(monkeypatch):
    """Call ``banded(True)`` to render images of more than SMALL_BANDS pixels in bands, ``banded(False)``
    for the whole image (the default BAND_PIXELS is far above these images)."""
    def switch(on: bool) -> None:
        monkeypatch.setattr(bands, "BAND_PIXELS", SMALL_BANDS if on else 1 << 22)
    return switch


def test_row_bands_cover_the_rows_in_whole_tiles(banded):
    assert row_bands(100, 200) == [(0, 100)]
    assert row_bands(100, 200, band_pixels=100 * 200) == [(0, 100)]
    assert row_bands(100, 200, band_pixels=40 * 200) == [(0, 32), (32, 64), (64, 96), (96, 100)]
    assert row_bands(100, 5000, band_pixels=1000) == [(y, min(y + 16, 100)) for y in range(0, 100, 16)]
    banded(True)
    assert row_bands(H, W) == [(0, 16), (16, 32), (32, 44)]


def _fit(cfg: FitConfig, steps: int) -> Fitter:
    fitter = Fitter(_image(), cfg.replace(steps=steps))
    fitter.run()
    return fitter


@pytest.mark.parametrize("loss", ["l2", "l1"])
def test_a_banded_fit_takes_the_whole_images_steps(banded, loss):
    cfg = FitConfig(num_gaussians=80, render_mode="topk", topk=6, loss=loss, schedule="cosine",
                    coarse_to_fine=False, progressive=True, initial_fraction=0.5, growth_batches=2, growth_end=0.5,
                    backend="cpu", log_every=1)
    banded(False)
    whole = _fit(cfg, 12)
    banded(True)
    split = _fit(cfg, 12)
    for name in ATTRIBUTES:
        torch.testing.assert_close(getattr(split.model, name), getattr(whole.model, name), rtol=0, atol=2e-4,
                                   msg=name)
    assert [h.num_gaussians for h in split.history] == [h.num_gaussians for h in whole.history]
    for a, b in zip(split.history, whole.history):
        assert abs(a.psnr - b.psnr) < 1e-3 and abs(a.loss - b.loss) <= 1e-4 * abs(b.loss) + 1e-9


def test_losses_over_windows_are_not_banded(banded):
    assert pixel_sum_for("l1_ssim") is None and pixel_sum_for("ms_ssim") is None
    banded(True)
    fitter = Fitter(_image(), FitConfig(num_gaussians=30, loss="l1_ssim", steps=2, backend="cpu"))
    fitter.run()  # renders whole (SSIM windows cross the bands' edges)
    assert fitter.pixel_sum is None


def _fitted():
    fitter = Fitter(_image(), FitConfig(num_gaussians=70, render_mode="topk", topk=6, loss="l2", steps=40,
                                        backend="cpu"))
    return fitter.run().model


@pytest.mark.parametrize("mode", ["topk", "sum"])
def test_the_sensitivity_of_a_banded_image_is_the_whole_images(banded, mode):
    model = _fitted()
    model.render_mode = mode
    banded(False)
    whole = calc_sensitivity(model, H, W)
    banded(True)
    split = calc_sensitivity(model, H, W)
    for group in ("color", "shape", "position"):
        torch.testing.assert_close(getattr(split, group), getattr(whole, group), rtol=1e-4, atol=1e-6, msg=group)
    if mode == "sum":  # closed form: the same numbers
        torch.testing.assert_close(split.curvature, whole.curvature)
    else:  # random-sign probes: other signs in bands, the same expectation
        for g in range(3):
            a, b = split.curvature[:, g], whole.curvature[:, g]
            assert abs(float(a.sum() / b.sum()) - 1) < 0.15
            assert float(torch.corrcoef(torch.stack([a, b]))[0, 1]) > 0.8


def test_banded_fine_tuning_with_the_rate_term_takes_the_whole_images_steps(banded):
    model, target = _fitted(), _image()
    cfg = FitConfig(loss="l2")
    lrs = {"xy": 2e-4, "shape": 5e-3, "color": 5e-3}
    out = {}
    for on in (False, True):
        banded(on)
        qset = QuantizedSet(model, H, W, CodecSettings(), generator=torch.Generator().manual_seed(0))
        losses: list[float] = []
        finetune(qset, target, 8, lrs, make_loss(cfg), on_step=lambda k, v, seen=losses: seen.append(v),
                 rate_db=6.0, pixel_sum=pixel_sum_for("l2"))
        out[on] = (qset, losses)
    (whole, lw), (split, ls) = out[False], out[True]
    np.testing.assert_allclose(ls, lw, rtol=1e-4)
    for a, b in zip(split.parameters(), whole.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=2e-5)


def test_the_encoders_final_render_of_a_banded_image_is_the_decoders(banded):
    from lgi_dictco.gauss.format import LgiHeader

    model = _fitted()
    header = LgiHeader(width=W, height=H, channels=3, color_space="rgb", render_mode="topk", topk=6,
                       num_gaussians=model.num_gaussians, pos_bits=(12, 12))
    p = {k: v.detach() for k, v in model.params().items()}
    banded(False)
    whole = render_decoded(header, p, H, W, backend="cpu")
    banded(True)
    split = render_decoded(header, p, H, W, backend="cpu")
    assert split.shape == whole.shape == (3, H, W)
    torch.testing.assert_close(split, whole, rtol=0, atol=1e-6)


def test_an_encode_in_bands_lands_under_its_target_as_the_whole_one_does(banded):
    from lgi_dictco.gauss import decode
    from lgi_train.compress.encoder import EncodeOptions, encode_image

    target, goal = _image(seed=1), int(4.0 * H * W / 8)
    results = {}
    for on in (False, True):
        banded(on)
        opts = EncodeOptions(codec=CodecSettings(finetune_steps=15, shape_codebook=0, color_codebook=0),
                             fit_steps=40, refit_steps=5, target_bytes=goal)
        results[on] = encode_image(target, opts)
    psnr = {on: float(-10 * torch.log10(((r.image - target) ** 2).mean())) for on, r in results.items()}
    split, whole = results[True], results[False]
    assert 0.99 * len(whole.data) <= len(split.data) <= goal
    assert split.rate_log["kept"] == whole.rate_log["kept"]
    assert abs(psnr[True] - psnr[False]) < 0.01, psnr
    decoded = decode(split.data)
    banded(False)
    whole_render = render_decoded(decoded.payload.header, {k: torch.from_numpy(v) for k, v in decoded.params.items()},
                                  H, W)
    torch.testing.assert_close(split.image, whole_render, rtol=0, atol=1e-6)
