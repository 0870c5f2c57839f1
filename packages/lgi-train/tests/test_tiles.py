"""Fitting in tiles (lgi_train.compress.tiles): the grid, the counts, the coordinates, the merged fit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lgi_train.compress.tiles import Tile, _to_global, fit_in_tiles, tile_counts, tile_grid
from lgi_train.config import FitConfig


@pytest.mark.parametrize("h,w,tile,overlap", [(100, 130, 32, 8), (64, 64, 64, 16), (50, 300, 100, 0)])
def test_the_cores_cover_every_pixel_once_and_the_boxes_pad_them(h, w, tile, overlap):
    tiles = tile_grid(h, w, tile, overlap)
    cover = np.zeros((h, w), int)
    for t in tiles:
        cover[t.y0:t.y1, t.x0:t.x1] += 1
        assert t.y1 - t.y0 <= tile and t.x1 - t.x0 <= tile
        assert (t.py0, t.px0) == (max(0, t.y0 - overlap), max(0, t.x0 - overlap))
        assert (t.py1, t.px1) == (min(h, t.y1 + overlap), min(w, t.x1 + overlap))
    assert (cover == 1).all()
    assert len(tiles) == math.ceil(h / tile) * math.ceil(w / tile)
    with pytest.raises(ValueError, match="at least 16"):
        tile_grid(h, w, 8, overlap)


def test_counts_follow_the_initial_density_and_sum_to_n():
    img = torch.full((3, 64, 128), 0.5)
    img[:, :, 64:] = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0))  # texture on the right
    tiles = tile_grid(64, 128, 64, 8)
    counts = tile_counts(img, tiles, 1001, uniform_fraction=0.1)
    assert sum(o for o, _ in counts) == 1001
    (flat, flat_fit), (busy, busy_fit) = counts
    assert busy > 5 * flat  # the uniform share only
    assert flat_fit >= flat and busy_fit > busy  # the padded boxes hold more of the density


def test_tile_coordinates_become_the_same_pixels_of_the_whole_image():
    from lgi_gsplat2d import render

    g = torch.Generator().manual_seed(1)
    h, w = 60, 90
    t = Tile(10, 40, 20, 70, 2, 48, 12, 78)  # padded box 46 x 66, not the image's aspect
    n = 25
    params = {"xy": 0.25 + 0.5 * torch.rand(n, 2, generator=g), "scales": 0.01 + 0.03 * torch.rand(n, 2, generator=g),
              "rotations": 3 * torch.rand(n, generator=g), "colors": torch.rand(n, 3, generator=g)}
    th, tw = t.py1 - t.py0, t.px1 - t.px0
    local = render(params["xy"], params["scales"], params["rotations"], params["colors"], th, tw, mode="sum",
                   backend="torch")
    gl = _to_global(t, h, w, params)
    whole = render(gl["xy"], gl["scales"], gl["rotations"], gl["colors"], h, w, mode="sum", backend="torch")
    torch.testing.assert_close(whole[t.py0:t.py1, t.px0:t.px1], local, atol=2e-5, rtol=1e-4)


def _image(h=48, w=80):
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([xx, yy, 0.5 + 0.4 * np.sin(11 * xx) * np.cos(9 * yy)])
    return torch.from_numpy(img.astype(np.float32))


@pytest.mark.parametrize("workers", [1, 2])
def test_a_tiled_fit_is_one_set_of_the_whole_image(workers):
    from lgi_train.metrics import psnr

    target = _image()
    cfg = FitConfig(num_gaussians=300, steps=60, render_mode="topk", loss="l2")
    model, tiles = fit_in_tiles(target, cfg, 300, tile=32, overlap=8, workers=workers)
    assert len(tiles) == 6
    assert 0.8 * 300 <= model.num_gaussians <= 1.2 * 300  # owners keep what drifted into their core
    xy = model.xy.detach()
    assert ((xy >= 0) & (xy < 1)).all()
    with torch.no_grad():
        assert psnr(model.render(48, 80).clamp(0, 1), target) > 25
