"""Why top-K blending climbed late in a fit, and what cures it: the same fit under blend variants.

    python benchmarks/bench_topk_blend.py                      # kodim05 at half size, 1500 Gaussians, 800 steps
    python benchmarks/bench_topk_blend.py --variants hard,floor,sum --images kodim05,kodim23

One fit per (image, variant): the image downsampled 2x, L2 loss, cosine schedule, progressive growth,
gradient init, seed 0; the PSNR of the render every 20 steps. Variants:

  hard        top-K, w = exp(-q/2) inside q <= 9 (lgi-gsplat2d 0.1, mode "topk-hard"), native kernels
  floor       top-K, w = exp(-q/2) - exp(-4.5): continuous at the cutoff (mode "topk"), native kernels
  sum         sum blending, native kernels
  eps         hard cutoff, normalization by sum w + 0.01 instead of + 1e-4 (patched reference)
  floor-eps   floor and eps together (patched reference)
  floor-k1    floor, and every kept weight also lowered by the (K+1)-th weight, so that a swap at the K-th
              place is continuous too (patched reference)

The patched variants replace the per-block function of the pure-torch reference (``_reference._block``)
and run about 25x slower than the native kernels. Besides the PSNR: the best PSNR and its step (a fit that
climbs has them at the end) and the *dark pixels*, where the render is near black (RGB sum < 0.05)
though the image is not (> 0.6): the speckles of holes that no Gaussian covers. ``last_psnr`` is the last step's, ``final_psnr`` what the
fit returns (the fitter keeps its best state: ``kept_step``); the dark pixels are counted on the latter.

Writes benchmarks/results/topk_blend.csv (one row per fit), topk_blend_curves.csv and topk_blend.png; a rerun
replaces the rows (and curves) of the fits it repeats and keeps the others.
Not timed: the figures do not depend on the machine's load.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _common import KODAK, RESULTS, write_csv

NATIVE = {"hard": "topk-hard", "floor": "topk", "sum": "sum"}
PATCHED = {"eps": (False, 0.01, False), "floor-eps": (True, 0.01, False), "floor-k1": (True, 1e-4, True)}


def patched_block(floor: bool, eps: float, k1: bool):
    """A replacement for ``_reference._block`` (top-K only) with the given floor / epsilon / (K+1) rule."""
    from lgi_gsplat2d import _reference as ref

    def block(xys, conics, colors, opacities, idx, box, rows, cols, mode, k):
        j0, j1, i0, i1 = (v[idx] for v in box)
        x, y = xys[idx, 0], xys[idx, 1]
        a, b, c = conics[idx, 0], conics[idx, 1], conics[idx, 2]
        dx = (cols.to(xys.dtype) + 0.5)[None, :, None] - x
        dy = (rows.to(xys.dtype) + 0.5)[:, None, None] - y
        q = a * dx * dx + 2 * b * dy * dx + c * dy * dy
        keep = ((q <= ref.CUTOFF) & (cols[None, :, None] >= j0) & (cols[None, :, None] <= j1)
                & (rows[:, None, None] >= i0) & (rows[:, None, None] <= i1))
        qm = torch.where(keep, q.detach(), math.inf)
        kk = min(k, qm.shape[-1])
        selected = (qm <= torch.kthvalue(qm, kk, dim=-1, keepdim=True).values) & keep
        w = torch.where(keep, torch.exp(-0.5 * q), 0.0)
        tau = torch.full_like(w[..., :1], ref.TOPK_FLOOR if floor else 0.0)
        if k1 and qm.shape[-1] > kk:
            nxt = torch.kthvalue(qm, kk + 1, dim=-1, keepdim=True)
            w_next = torch.where(torch.isfinite(nxt.values), torch.gather(w, -1, nxt.indices), 0.0)
            tau = torch.maximum(w_next, tau)
        w = torch.where(selected, (w - tau).clamp(min=0.0), 0.0)
        return (w @ colors[idx]) / (w.sum(-1, keepdim=True) + eps)

    return block


def run_one(image: str, variant: str, n: int, steps: int):
    from PIL import Image

    from lgi_gsplat2d import _reference as ref
    from lgi_train.config import FitConfig
    from lgi_train.encode.fitting import downsample
    from lgi_train.fit import Fitter

    pixels = np.asarray(Image.open(KODAK / f"{image}.png").convert("RGB"), np.float32) / 255
    target = downsample(torch.from_numpy(pixels).permute(2, 0, 1).contiguous(), 0.5)
    original = ref._block
    if variant in PATCHED:
        ref._block = patched_block(*PATCHED[variant])
    try:
        cfg = FitConfig(num_gaussians=n, render_mode=NATIVE.get(variant, "topk-hard"), loss="l2", schedule="cosine",
                        steps=steps, backend="torch" if variant in PATCHED else "cpu", log_every=20)
        curve = []
        fitter = Fitter(target, cfg, on_step=lambda s: curve.append((s.step, s.psnr)))
        t0 = time.perf_counter()
        result = fitter.run()
        seconds = time.perf_counter() - t0
        with torch.no_grad():
            out = fitter.model.render(*target.shape[1:]).clamp(0, 1)
    finally:
        ref._block = original
    dark = int(((out.sum(0) < 0.05) & (target.sum(0) > 0.6)).sum())
    best_step, best = max(((s, p) for s, p in curve if s > 0), key=lambda sp: sp[1])
    last = curve[-1][1]  # the last step's (a fit ends at its last step: no time cap here)
    row = dict(image=image, variant=variant, gaussians=n, steps=steps, last_psnr=round(last, 3),
               best_psnr=round(best, 3), best_step=best_step, final_psnr=round(result.psnr, 3),
               kept_step=result.best_step or steps, dark_pixels=dark, seconds=round(seconds, 1))
    return row, [dict(image=image, variant=variant, step=s, psnr=round(p, 3)) for s, p in curve]


def plot(curves: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({(c["image"], c["variant"]) for c in curves})
    images = sorted({k[0] for k in keys})
    fig, axes = plt.subplots(1, len(images), figsize=(6 * len(images), 4.5), squeeze=False)
    for ax, image in zip(axes[0], images):
        for img, variant in keys:
            if img != image:
                continue
            pts = [(int(c["step"]), float(c["psnr"])) for c in curves if (c["image"], c["variant"]) == (img, variant)]
            s, p = zip(*sorted(pts))
            ax.plot(s, p, label=variant)
        ax.set_title(f"{image} (half size): PSNR during the fit", fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel("PSNR (dB)")
        ax.set_ylim(bottom=18)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", default="kodim05")
    ap.add_argument("--variants", default="hard,floor,sum,eps,floor-eps,floor-k1")
    ap.add_argument("--gaussians", type=int, default=1500)
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--out", type=Path, default=RESULTS / "topk_blend.csv")
    args = ap.parse_args()
    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in NATIVE and v not in PATCHED]
    if unknown:
        ap.error(f"unknown variants {unknown}; choose from {sorted({*NATIVE, *PATCHED})}")
    torch.manual_seed(0)
    rows, curves = [], []
    curves_path = args.out.with_name(args.out.stem + "_curves.csv")
    for image in args.images.split(","):
        for variant in variants:
            row, curve = run_one(image, variant, args.gaussians, args.steps)
            print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
            rows.append(row)
            curves.extend(curve)
    redone = {(r["image"], r["variant"]) for r in rows}
    for path, table in ((args.out, rows), (curves_path, curves)):
        if path.exists():
            kept = [r for r in csv.DictReader(open(path)) if (r["image"], r["variant"]) not in redone]
            table[:0] = [{k: r.get(k, "") for k in table[0]} for r in kept]
        write_csv(path, table)
    plot(curves, args.out.with_suffix(".png"))  # every fit in the files, old and new
    print(f"wrote {args.out}, {curves_path}, {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
