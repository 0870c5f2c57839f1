"""Training a :class:`~lgi_dictco.restore.model.RestoreNet` on pairs of (decoded, original) images.

The data are whole images in memory (a few megapixels: the corpus of ``tools/train_restore.py``); each step
draws ``batch`` random ``patch`` × ``patch`` crops at the same place in a decoded image and its original,
mirrored left-right half of the time, and takes one Adam step on the mean squared error (or L1), the learning rate
falling along a cosine to zero over the run's length (steps or minutes, whichever ends first).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from lgi_dictco.restore.model import RestoreConfig, RestoreNet


@dataclass(frozen=True)
class TrainConfig:
    patch: int = 64
    batch: int = 16
    lr: float = 2e-3
    steps: int = 100_000
    minutes: float | None = None
    seed: int = 0
    loss: str = "mse"  # "mse" (what PSNR measures) or "l1"


def _crops(pairs, rng: np.random.Generator, patch: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch`` aligned crops (degraded, original), as [B, 3, patch, patch] float tensors."""
    weights = np.array([p[0].shape[1] * p[0].shape[2] for p in pairs], np.float64)
    picks = rng.choice(len(pairs), size=batch, p=weights / weights.sum())
    xs, ys = [], []
    for i in picks:
        deg, ref = pairs[i]
        _, h, w = deg.shape
        y, x = int(rng.integers(0, h - patch + 1)), int(rng.integers(0, w - patch + 1))
        a, b = deg[:, y:y + patch, x:x + patch], ref[:, y:y + patch, x:x + patch]
        if rng.random() < 0.5:
            a, b = a.flip(-1), b.flip(-1)
        xs.append(a)
        ys.append(b)
    return torch.stack(xs), torch.stack(ys)


def train(pairs: list[tuple[torch.Tensor, torch.Tensor]], config: RestoreConfig = RestoreConfig(),
          tc: TrainConfig = TrainConfig(), on_step: Callable[[int, float, float], None] | None = None,
          model: RestoreNet | None = None) -> tuple[RestoreNet, dict]:
    """Train on ``pairs`` of [3, H, W] float tensors in [0, 1] (decoded, original), each at least ``patch`` square.

    Args:
        on_step: called as (step, loss, elapsed seconds) after every step.
        model: continue from these weights (default: a new network of ``config``).

    Returns:
        the model (eval mode) and a record: steps, seconds, the mean loss of the first and last 100 steps.
    """
    if not pairs:
        raise ValueError("no training pairs")
    if tc.loss not in ("mse", "l1"):
        raise ValueError(f"loss must be mse or l1, got {tc.loss!r}")
    for deg, ref in pairs:
        if deg.shape != ref.shape or min(deg.shape[1:]) < tc.patch:
            raise ValueError(f"a pair of shapes {tuple(deg.shape)} / {tuple(ref.shape)} is unusable with "
                             f"{tc.patch}-pixel crops")
    torch.manual_seed(tc.seed)
    rng = np.random.default_rng(tc.seed)
    net = model if model is not None else RestoreNet(config)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=tc.lr)
    budget = None if tc.minutes is None else 60.0 * tc.minutes
    t0 = time.perf_counter()
    losses: list[float] = []
    step = 0
    while step < tc.steps:
        elapsed = time.perf_counter() - t0
        if budget is not None and elapsed >= budget:
            break
        # Cosine decay over the run's length: the step budget, or the time budget where that ends first.
        frac = step / tc.steps if budget is None else max(step / tc.steps, elapsed / budget)
        for g in opt.param_groups:
            g["lr"] = tc.lr * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))
        x, y = _crops(pairs, rng, tc.patch, tc.batch)
        err = net(x) - y
        loss = (err * err).mean() if tc.loss == "mse" else err.abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        losses.append(float(loss.detach()))
        if on_step is not None:
            on_step(step, losses[-1], time.perf_counter() - t0)
    net.eval()
    record = {"steps": step, "seconds": round(time.perf_counter() - t0, 1),
              "loss_first": float(np.mean(losses[:100])) if losses else None,
              "loss_last": float(np.mean(losses[-100:])) if losses else None}
    return net, record
