"""Initial positions: drawn ∝ a density of any size, deterministically for a seed."""

from __future__ import annotations

import pytest
import torch

import lgi_train.init as init
from lgi_train.init import MULTINOMIAL_MAX_CATEGORIES, draw_indices, sample_from_density


def test_densities_beyond_torch_multinomials_limit_are_sampled():
    """More than 2**24 categories (a > 16.78 MP image): torch.multinomial refuses, the fit must not."""
    m = MULTINOMIAL_MAX_CATEGORIES + 5
    p = torch.zeros(m, dtype=torch.float64)
    hot = torch.tensor([0, 12_345_678, m - 1])
    p[hot] = torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64)
    draws = draw_indices(p, 40_000, torch.Generator().manual_seed(0))
    assert set(draws.unique().tolist()) == set(hot.tolist())
    freq = torch.stack([(draws == i).double().mean() for i in hot])
    assert torch.allclose(freq, torch.tensor([0.25, 0.5, 0.25], dtype=torch.float64), atol=0.015)
    again = draw_indices(p, 40_000, torch.Generator().manual_seed(0))
    assert torch.equal(draws, again)


def test_inverse_cdf_sampling_follows_the_density(monkeypatch):
    monkeypatch.setattr(init, "MULTINOMIAL_MAX_CATEGORIES", 0)  # the large-image path on a small density
    p = torch.tensor([0.0, 1.0, 0.0, 3.0, 0.5, 0.0, 0.5], dtype=torch.float64)
    draws = draw_indices(p, 50_000, torch.Generator().manual_seed(1))
    counts = torch.bincount(draws, minlength=p.numel()).double()
    assert counts[p == 0].sum() == 0  # a zero-probability pixel is never drawn
    assert torch.allclose(counts / counts.sum(), p / p.sum(), atol=0.01)


def test_small_densities_keep_their_exact_multinomial_draws():
    p = torch.rand(1000, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    ours = draw_indices(p, 500, torch.Generator().manual_seed(3))
    theirs = torch.multinomial(p / p.sum(), 500, replacement=True, generator=torch.Generator().manual_seed(3))
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("uniform_fraction", [0.0, 0.3])
def test_positions_on_a_17_megapixel_density(uniform_fraction):
    h, w = 4100, 4100  # 16.81 MP > 2**24
    density = torch.zeros(h, w)
    density[100:110, 2000:2010] = 1.0
    xy = sample_from_density(density, 1000, uniform_fraction, torch.Generator().manual_seed(4))
    assert xy.shape == (1000, 2) and ((xy >= 0) & (xy <= 1)).all()
    col, row = xy[:, 0] * w, xy[:, 1] * h
    inside = (row >= 100) & (row < 110) & (col >= 2000) & (col < 2010)
    assert int(inside.sum()) >= 1000 - round(1000 * uniform_fraction)
