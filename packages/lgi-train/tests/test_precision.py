"""Precision classes of the .lgi encoder: the curvature they are ranked by, and the grids they give."""

from __future__ import annotations

import math

import numpy as np
import torch

from lgi_train.compress.codec import CodecSettings, QuantizedSet, assign_classes
from lgi_train.compress.sensitivity import _probe_curvature, calc_curvature, calc_sensitivity
from lgi_train.model import GaussianModel


def _model(n=60, seed=0, mode="sum") -> GaussianModel:
    g = torch.Generator().manual_seed(seed)
    xy = 0.15 + 0.7 * torch.rand(n, 2, generator=g)              # well inside the image
    scales = torch.exp(torch.empty(n, 2).uniform_(math.log(0.02), math.log(0.06), generator=g))
    rot = torch.rand(n, generator=g) * math.pi
    colors = torch.randn(n, 3, generator=g) * torch.exp(torch.randn(n, 1, generator=g))
    return GaussianModel(xy, scales, rot, colors, render_mode=mode, backend="torch")


def test_closed_form_curvature_matches_random_probes():
    """Sum blending: the closed-form diagonal of JᵀJ equals its unbiased probe estimate (many probes)."""
    model = _model()
    exact = calc_curvature(model, 48, 64)
    probed = _probe_curvature(model, 48, 64, probes=256, seed=1)
    ratio = probed / exact
    # Every group, every Gaussian: a 256-probe estimate has a relative spread of about 9 %.
    assert exact.shape == (60, 3) and bool((exact > 0).all())
    for g in range(3):
        assert abs(float(ratio[:, g].median()) - 1) < 0.08, (g, float(ratio[:, g].median()))
        assert float(torch.corrcoef(torch.stack([exact[:, g].log(), probed[:, g].log()]))[0, 1]) > 0.9


def test_gaussians_outside_the_image_have_no_curvature():
    model = _model(n=4)
    with torch.no_grad():
        model.xy[0] = torch.tensor([3.0, 0.5])  # far to the right of the image
    c = calc_curvature(model, 48, 64)
    assert float(c[0].max()) < 1e-6 * float(c[1:].min())


def test_classes_follow_curvature_and_keep_the_mean_step():
    g = torch.Generator().manual_seed(0)
    curv = torch.exp(torch.randn(2000, 3, generator=g) * 1.5)
    pc = assign_classes(curv, 2000, 4)
    score = torch.log(curv).mean(1)
    means = [float(score[pc.classes == k].mean()) for k in range(4)]
    assert means == sorted(means)  # higher class, higher curvature
    # Finer steps (lower exponents) for higher classes, in every group ...
    assert bool((pc.exps[:, 1:] <= pc.exps[:, :-1]).all())
    # ... and about the same mean log step as one common grid (so about the same rate).
    for grp in range(3):
        assert abs(float(pc.exps[grp][pc.classes].float().mean())) <= 0.5
    one = assign_classes(curv, 2000, 1)
    assert one.k == 1 and int(one.classes.max()) == 0


def test_quantized_set_uses_its_class_grids():
    """The encoder's coded values sit on the grid of their class, as the decoder reads them."""
    from lgi_dictco.gauss.decoder import dequantize
    from lgi_dictco.gauss.format import decode_lgi, encode_lgi

    model = _model(n=200)
    sens = calc_sensitivity(model, 48, 64)
    qs = QuantizedSet(model, 48, 64, CodecSettings(precision_classes=4), importance=sens)
    payload = qs.to_payload()
    assert payload.header.num_classes == 4 and payload.classes is not None
    back = decode_lgi(encode_lgi(payload))
    params = dequantize(back)
    # The encoder's straight-through positions equal the decoder's, Gaussian for Gaussian (both in
    # the encoder's order after sorting by position).
    with torch.no_grad():
        mine = qs.positions().numpy()
    key = lambda a: np.lexsort((a[:, 1], a[:, 0]))  # noqa: E731
    np.testing.assert_allclose(mine[key(mine)], params["means"][key(params["means"])], atol=1e-7)
    drops = np.asarray(payload.header.class_drop)
    assert drops.max() > 0 and drops[-1] == 0  # the least sensitive class has the coarsest grid
