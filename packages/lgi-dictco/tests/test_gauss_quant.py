"""lgi_dictco.gauss: the torch twins equal the numpy transforms, and the one decoder's render contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lgi_dictco.gauss import quant, torch_quant, window


def test_class_steps_are_bit_identical():
    """The encoder snaps to exactly the float32 steps the decoder computes."""
    rng = np.random.default_rng(0)
    for _ in range(50):
        d = int(rng.integers(1, 5))
        step = rng.uniform(1e-4, 2.0, d).astype(np.float32)
        exps = rng.integers(-16, 17, int(rng.integers(1, 9)))
        want = quant.class_steps(step, exps)
        got = torch_quant.class_steps(torch.from_numpy(step), torch.from_numpy(exps))
        assert got.dtype == torch.float32
        assert np.array_equal(got.numpy(), want)
    for e in range(-16, 17):
        assert np.float32(torch_quant.class_multiplier(e)) == quant.class_multiplier(e)


def test_opponent_twin():
    rng = np.random.default_rng(1)
    rgb = rng.uniform(0, 1, (100, 3)).astype(np.float32)
    m = torch_quant.opponent()
    assert np.array_equal(m.numpy(), quant.OPPONENT)
    coded = torch.from_numpy(rgb) @ m.t()
    np.testing.assert_allclose(quant.opponent_to_rgb(coded.numpy()), rgb, atol=1e-6)
    np.testing.assert_allclose((coded @ m).numpy(), quant.opponent_to_rgb(coded.numpy()), rtol=1e-6, atol=1e-7)


def test_shape_feature_twins():
    rng = np.random.default_rng(2)
    n = 500
    scales = np.exp(rng.uniform(-6, 0, (n, 2))).astype(np.float32)
    scales[:20, 1] = scales[:20, 0]  # isotropic: the angle is undefined, u = v = 0
    rot = rng.uniform(-4, 4, n).astype(np.float32)
    feat_np = quant.params_to_shape_features(scales, rot)
    feat_t = torch_quant.shape_features(torch.log(torch.from_numpy(scales)), torch.from_numpy(rot))
    np.testing.assert_allclose(feat_t.numpy(), feat_np, rtol=1e-5, atol=1e-5)
    s_np, r_np = quant.shape_features_to_params(feat_np)
    s_t, r_t = torch_quant.features_to_shape(torch.from_numpy(feat_np))
    np.testing.assert_allclose(s_t.numpy(), s_np, rtol=1e-5)
    # Isotropic rows have no angle (numpy's arctan2(-0, -0) is -π); elsewhere angles agree modulo π.
    turn = (r_t.numpy()[20:] - r_np[20:] + np.pi / 2) % np.pi - np.pi / 2
    np.testing.assert_allclose(turn, 0, atol=1e-5)
    # Differentiable at isotropy (the point of the torch twin).
    f = torch.from_numpy(feat_np[:20]).requires_grad_(True)
    s, r = torch_quant.features_to_shape(f)
    (s.sum() + r.sum()).backward()
    assert bool(torch.isfinite(f.grad).all())


@pytest.mark.parametrize("zoom", [1.0, 2.5])
def test_window_maps_the_window_onto_the_unit_square(zoom):
    params = {"means": np.array([[0.25, 0.5]], np.float32), "scales": np.array([[0.1, 0.2]], np.float32),
              "rotations": np.zeros(1, np.float32), "colors": np.ones((1, 3), np.float32)}
    w = window(params, 0.25, 0.5, zoom)
    assert np.array_equal(w["means"], np.zeros((1, 2), np.float32))
    np.testing.assert_allclose(w["scales"], params["scales"] * zoom)
    assert w["colors"] is params["colors"]


def test_the_encoders_snaps_are_the_decoders_grids():
    """grid_index / cell_index give the codes the decoder turns back into exactly the snapped values: a
    value on a grid comes back as its own code, positions' cell centres equal quant.cell_centres."""
    rng = np.random.default_rng(3)
    lo, step, levels = torch.tensor([-1.5, 0.25]), torch.tensor([0.125, 0.5]), torch.tensor([64.0, 9.0])
    q = torch.from_numpy(rng.integers(0, [64, 9], (200, 2)).astype(np.float32))
    assert torch.equal(torch_quant.grid_index(lo + q * step, lo, step, levels), q)
    x = torch.from_numpy(rng.uniform(-5, 9, (200, 2)).astype(np.float32))
    got = torch_quant.grid_index(x, lo, step, levels)
    assert got.min() >= 0 and (got <= levels - 1).all()
    inside = (x >= lo) & (x <= lo + (levels - 1) * step)
    assert ((lo + got * step - x).abs()[inside] <= step.expand_as(x)[inside] / 2 + 1e-6).all()  # the nearest
    bits, drop = (10, 9), rng.integers(0, 3, 300)
    res = torch.from_numpy(np.stack([2.0 ** (bits[0] - drop), 2.0 ** (bits[1] - drop)], 1).astype(np.float32))
    xy = torch.from_numpy(rng.uniform(-0.1, 1.1, (300, 2)).astype(np.float32))
    cells = torch_quant.cell_index(xy, res)
    assert (cells >= 0).all() and (cells < res).all()
    want = quant.cell_centres(cells.long().numpy(), bits, drop)
    assert np.array_equal(torch_quant.cell_centre(cells, res).numpy(), want)
