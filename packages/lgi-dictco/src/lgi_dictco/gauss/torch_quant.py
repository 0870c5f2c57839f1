"""Torch twins of :mod:`lgi_dictco.gauss.quant`, for quantization-aware fitting (lgi-train).

Each function computes what its numpy twin does, differentiably; tests/test_gauss_quant.py checks them
equal on random inputs. The grids (:func:`class_steps`) must be bit-identical to the decoder's, since the
encoder snaps values to exactly the float32 numbers the decoder will compute.
"""

from __future__ import annotations

import torch

from lgi_dictco.gauss import quant


def class_multiplier(e: int) -> float:
    """2^(e/2) as a Python float holding the decoder's float32 value (:func:`quant.class_multiplier`)."""
    return float(quant.class_multiplier(int(e)))


def class_steps(step: torch.Tensor, exps) -> torch.Tensor:
    """[K, D] float32 steps of every class, exactly :func:`quant.class_steps` (``step`` [D] float32)."""
    return torch.stack([(step * class_multiplier(e)).float() for e in torch.as_tensor(exps).tolist()])


def grid_index(x: torch.Tensor, lo: torch.Tensor, step: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """The code ``q`` in 0..levels-1 of the value grid ``lo + q·step`` nearest to ``x`` (float, not yet
    an integer dtype): what the encoder writes for a value the decoder reads back as ``lo + q·step``."""
    return torch.minimum(torch.clamp(torch.round((x - lo) / step), min=0), levels - 1)


def cell_index(xy: torch.Tensor, res: torch.Tensor) -> torch.Tensor:
    """The grid cell (float) of positions ``xy`` [N, 2] in the unit square on a grid of ``res`` [N, 2]
    cells per axis (powers of two): floor, clamped to the grid; the twin of :func:`cell_centre`."""
    return torch.minimum(torch.floor(xy.clamp(0, 1) * res), res - 1)


def cell_centre(cell: torch.Tensor, res: torch.Tensor) -> torch.Tensor:
    """Centres in the unit square of grid cells ``cell`` [N, 2] on grids of ``res`` cells per axis:
    exactly :func:`quant.cell_centres` (``res`` is a power of two, so ``/ res`` is exact in float32)."""
    return (cell + 0.5) / res


def opponent(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """[3, 3] ``quant.OPPONENT``: coded = rgb @ OPPONENT.T, rgb = coded @ OPPONENT."""
    return torch.from_numpy(quant.OPPONENT.copy()).to(dtype)


def shape_features(log_scale: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """(log σ₁, log σ₂, θ) → log-Euclidean features (m, u, v), differentiable (:func:`quant.params_to_shape_features`)."""
    m = log_scale[:, 0] + log_scale[:, 1]
    a = log_scale[:, 0] - log_scale[:, 1]
    return torch.stack([m, a * torch.cos(2 * rotation), a * torch.sin(2 * rotation)], 1)


def features_to_shape(feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(m, u, v) → (scales [N, 2], rotations [N]); safe gradients at isotropy (u = v = 0).

    The twin of :func:`quant.shape_features_to_params`.
    """
    m, u, v = feat[:, 0], feat[:, 1], feat[:, 2]
    a2 = u * u + v * v
    iso = a2 < 1e-20
    a = torch.sqrt(torch.where(iso, torch.ones_like(a2), a2)) * (~iso)
    theta = 0.5 * torch.atan2(v, torch.where(iso, torch.ones_like(u), u))
    return torch.exp(torch.stack([(m + a) * 0.5, (m - a) * 0.5], 1)), theta
