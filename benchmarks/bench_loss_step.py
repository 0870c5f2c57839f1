"""What the L2 loss costs in a fit step: autograd's formula against the fused loss, in one process.

    flock /tmp/lgi-bench.lock .nox/_shared-torch/bin/python benchmarks/bench_loss_step.py \\
        [--images kodim05,kodim23] [--gaussians 6000] [--steps 40] [--rounds 3]

Each step is the fit's own (``Fitter._train_step``): render, loss, backward, the PSNR of the clamped
render, Adam. The encoder's fit configuration (top-K blend, K = 10, L2) on the full-size image, random
init warmed up 30 steps. The two variants take turns, ``--rounds`` times ``--steps`` steps each, and
the median step of each is reported, with the loss part alone (the same tensors, no render) beside it.
Writes benchmarks/results/loss_step.csv.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from _common import KODAK, RESULTS, cpu_name, write_csv
from PIL import Image


def autograd_l2(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((x - y) ** 2).mean()


def autograd_psnr_mse(render: torch.Tensor, target: torch.Tensor) -> float:
    with torch.no_grad():
        return float(((render.detach().clamp(0, 1) - target) ** 2).mean())


def main() -> int:
    from lgi_train.config import FitConfig
    from lgi_train.fit import Fitter
    from lgi_train.losses import clamped_mse, mean_squared_error

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", default="kodim05,kodim23")
    ap.add_argument("--gaussians", type=int, default=6000)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=str(RESULTS / "loss_step.csv"))
    args = ap.parse_args()
    variants = {"autograd": (autograd_l2, autograd_psnr_mse), "fused": (mean_squared_error, clamped_mse)}
    rows = []
    for stem in args.images.split(","):
        img = np.asarray(Image.open(KODAK / f"{stem}.png").convert("RGB"), dtype=np.float32) / 255
        target = torch.from_numpy(img).permute(2, 0, 1).contiguous()
        cfg = FitConfig(num_gaussians=args.gaussians, render_mode="topk", topk=10, loss="l2", schedule="cosine",
                        steps=10_000, progressive=False, init="random", checkpoint_every=0)
        fitter = Fitter(target, cfg)
        fitter.setup()
        for _ in range(30):
            fitter._train_step(target)
        step_ms: dict[str, list[float]] = {v: [] for v in variants}
        loss_ms: dict[str, list[float]] = {v: [] for v in variants}
        for _ in range(args.rounds):
            for name, (loss_fn, mse_fn) in variants.items():
                for _ in range(args.steps):
                    t0 = time.perf_counter()
                    render = fitter.model.render(*target.shape[1:])
                    loss = loss_fn(render, target)
                    fitter.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    mse = mse_fn(render, target)
                    fitter.optimizer.step()
                    t2 = time.perf_counter()
                    step_ms[name].append((t2 - t0) * 1000)
                    assert math.isfinite(mse)
                # The loss part alone on a fixed render (a leaf in the render's layout).
                leaf = render.detach().permute(1, 2, 0).contiguous().requires_grad_()
                for _ in range(args.steps):
                    t0 = time.perf_counter()
                    x = leaf.permute(2, 0, 1)
                    loss_fn(x, target).backward()
                    mse_fn(x, target)
                    loss_ms[name].append((time.perf_counter() - t0) * 1000)
                    leaf.grad = None
        for name in variants:
            rows.append({"image": stem, "gaussians": args.gaussians, "variant": name,
                         "step_ms": round(statistics.median(step_ms[name]), 2),
                         "loss_ms": round(statistics.median(loss_ms[name]), 2),
                         "steps": len(step_ms[name]), "threads": torch.get_num_threads(), "cpu": cpu_name(),
                         "date": datetime.now(timezone.utc).strftime("%Y-%m-%d")})
            print(rows[-1], flush=True)
    write_csv(Path(args.out), rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
