"""Training a :class:`~lgi_dictco.restore.model.RestoreNet` on pairs of (decoded, original) images.

The data are whole images in memory (a few megapixels: the corpus of ``tools/train_restore.py``); each step
draws ``batch`` random ``patch`` × ``patch`` crops at the same place in a decoded image and its original,
mirrored left-right half of the time, and takes one Adam step on the mean squared error (or L1), the learning rate
falling along a cosine to zero over the run's length (steps or minutes, whichever ends first). A pair may carry
a third item, its level (``model.level_of``), which a conditioned network reads.

With held-out pairs (photos kept out of training, not other sizes of a training photo), the network is scored
every ``val_every`` steps by its mean PSNR gain on them, whole images, and the best-scoring weights are the
ones returned: on a few megapixels of photos a network overfits long before its time budget ends.
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
    val_every: int = 500  # steps between scores on the held-out pairs (when there are any)


def _level(pair) -> float | None:
    return float(pair[2]) if len(pair) > 2 and pair[2] is not None else None


@torch.no_grad()
def held_out_gain(net: RestoreNet, pairs) -> float:
    """The mean PSNR gain (dB, on [0, 1] floats clamped as a decoder would) of ``net`` on whole ``pairs``."""
    gains = []
    for pair in pairs:
        deg, ref = pair[0], pair[1]
        out = net(deg[None], _level(pair))[0].clamp(0, 1)
        before = float(((deg - ref) ** 2).mean())
        after = float(((out - ref) ** 2).mean())
        gains.append(10 * math.log10(max(before, 1e-12) / max(after, 1e-12)))
    return float(np.mean(gains))


def _crops(pairs, rng: np.random.Generator, patch: int,
           batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``batch`` aligned crops (degraded, original), as [B, 3, patch, patch] float tensors, and their levels [B]
    (None for pairs without one)."""
    weights = np.array([p[0].shape[1] * p[0].shape[2] for p in pairs], np.float64)
    picks = rng.choice(len(pairs), size=batch, p=weights / weights.sum())
    xs, ys, levels = [], [], []
    for i in picks:
        deg, ref = pairs[i][0], pairs[i][1]
        levels.append(_level(pairs[i]))
        _, h, w = deg.shape
        y, x = int(rng.integers(0, h - patch + 1)), int(rng.integers(0, w - patch + 1))
        a, b = deg[:, y:y + patch, x:x + patch], ref[:, y:y + patch, x:x + patch]
        if rng.random() < 0.5:
            a, b = a.flip(-1), b.flip(-1)
        xs.append(a)
        ys.append(b)
    lv = None if levels[0] is None else torch.tensor(levels, dtype=torch.float32)
    return torch.stack(xs), torch.stack(ys), lv


def train(pairs: list[tuple], config: RestoreConfig = RestoreConfig(), tc: TrainConfig = TrainConfig(),
          on_step: Callable[[int, float, float], None] | None = None, model: RestoreNet | None = None,
          held_out: list[tuple] | None = None) -> tuple[RestoreNet, dict]:
    """Train on ``pairs`` of [3, H, W] float tensors in [0, 1] (decoded, original[, level]), each at least
    ``patch`` square; the pairs carry a level exactly when ``config.conditioned``.

    Args:
        on_step: called as (step, loss, elapsed seconds) after every step.
        model: continue from these weights (default: a new network of ``config``).
        held_out: pairs of photos not in ``pairs``: scored every ``tc.val_every`` steps, the best weights kept.

    Returns:
        the model (eval mode) and a record: steps, seconds, the mean loss of the first and last 100 steps; with
        ``held_out``, the scores (``val``: [step, gain in dB]), the step kept and its gain.
    """
    if not pairs:
        raise ValueError("no training pairs")
    if tc.loss not in ("mse", "l1"):
        raise ValueError(f"loss must be mse or l1, got {tc.loss!r}")
    for pair in [*pairs, *(held_out or [])]:
        deg, ref = pair[0], pair[1]
        if deg.shape != ref.shape or min(deg.shape[1:]) < tc.patch:
            raise ValueError(f"a pair of shapes {tuple(deg.shape)} / {tuple(ref.shape)} is unusable with "
                             f"{tc.patch}-pixel crops")
        if (_level(pair) is not None) != config.conditioned:
            raise ValueError("a conditioned network needs a level with every pair, another network none"
                             if config.conditioned else "this network is not conditioned: the pairs carry levels")
    torch.manual_seed(tc.seed)
    rng = np.random.default_rng(tc.seed)
    net = model if model is not None else RestoreNet(config)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=tc.lr)
    budget = None if tc.minutes is None else 60.0 * tc.minutes
    t0 = time.perf_counter()
    losses: list[float] = []
    val: list[tuple[int, float]] = []
    best: tuple[float, int, dict] | None = None

    def score() -> None:
        nonlocal best
        net.eval()
        gain = held_out_gain(net, held_out)
        net.train()
        val.append((step, round(gain, 4)))
        if best is None or gain > best[0]:
            best = (gain, step, {k: v.detach().clone() for k, v in net.state_dict().items()})

    step = 0
    if held_out:
        score()  # step 0: the identity (gain 0), so a network that never helps is returned as the identity
    while step < tc.steps:
        elapsed = time.perf_counter() - t0
        if budget is not None and elapsed >= budget:
            break
        # Cosine decay over the run's length: the step budget, or the time budget where that ends first.
        frac = step / tc.steps if budget is None else max(step / tc.steps, elapsed / budget)
        for g in opt.param_groups:
            g["lr"] = tc.lr * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))
        x, y, lv = _crops(pairs, rng, tc.patch, tc.batch)
        err = net(x, lv) - y
        loss = (err * err).mean() if tc.loss == "mse" else err.abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        losses.append(float(loss.detach()))
        if held_out and step % tc.val_every == 0:
            score()
        if on_step is not None:
            on_step(step, losses[-1], time.perf_counter() - t0)
    if held_out and (not val or val[-1][0] != step):
        score()
    net.eval()
    record = {"steps": step, "seconds": round(time.perf_counter() - t0, 1),
              "loss_first": float(np.mean(losses[:100])) if losses else None,
              "loss_last": float(np.mean(losses[-100:])) if losses else None}
    if best is not None:
        net.load_state_dict(best[2])
        record.update(val=val, kept_step=best[1], kept_gain=round(best[0], 4))
    return net, record
