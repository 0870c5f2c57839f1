"""Fitting ablations on one image: each variant changes FitConfig fields from a base, same seed.

    python benchmarks/ablate_fit.py --image kodim05 --gaussians 6000 --steps 500
    python benchmarks/ablate_fit.py --image kodim05 --steps 1000 --trace        # the top-k drift

Writes benchmarks/results/ablate_fit_<image>.csv (variant, final PSNR, seconds, steps, the fields
changed) and, with --trace, ablate_fit_<image>_trace.csv (training loss and PSNR every 100 steps for
top-k, top-k K=32 and sum blending, L2 loss). Seconds depend on machine load; PSNR does not.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KODAK = ROOT.parent / "shared" / "data" / "kodak"
RESULTS = ROOT / "benchmarks" / "results"

BASE = dict(render_mode="topk", loss="l1_ssim", schedule="cosine")
VARIANTS = {
    "plateau schedule": dict(schedule="plateau"),
    "cosine schedule": {},
    "cosine + coarse-to-fine 0.4": dict(coarse_to_fine=True, coarse_fraction=0.4),
    "cosine + coarse-to-fine 0.6": dict(coarse_to_fine=True, coarse_fraction=0.6),
    "lr x2 (c2f 0.4)": dict(coarse_to_fine=True, lr_position=1e-3, lr_scale=1e-2, lr_color=1e-2),
    "lr x0.5 (c2f 0.4)": dict(coarse_to_fine=True, lr_position=2.5e-4, lr_scale=2.5e-3, lr_color=2.5e-3),
    "K=6 (c2f 0.4)": dict(coarse_to_fine=True, topk=6),
    "init placement (c2f 0.4)": dict(coarse_to_fine=True, init="placement"),
    "init_scale 0.4 (c2f 0.4)": dict(coarse_to_fine=True, init_scale=0.4),
    "init_scale 0.8 (c2f 0.4)": dict(coarse_to_fine=True, init_scale=0.8),
    "growth, Adam state reset (Image-GS)": dict(coarse_to_fine=True, reset_optimizer_on_growth=True),
    "no progressive growth (c2f 0.4)": dict(coarse_to_fine=True, progressive=False),
    "L2 loss": dict(loss="l2"),
    "sum blending, L2 (c2f 0.5)": dict(render_mode="sum", loss="l2", coarse_to_fine=True, coarse_fraction=0.5),
    "sum blending, L1+SSIM (c2f 0.5)": dict(render_mode="sum", coarse_to_fine=True, coarse_fraction=0.5),
}
TRACE = {"top-k K=10": dict(render_mode="topk"), "top-k K=32": dict(render_mode="topk", topk=32),
         "sum": dict(render_mode="sum")}


def main() -> int:
    from lgi_train.config import FitConfig
    from lgi_train.fit import Fitter
    from lgi_train.runs import load_target

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", default="kodim05")
    ap.add_argument("--gaussians", type=int, default=6000)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--trace", action="store_true")
    args = ap.parse_args()
    target = load_target(KODAK / f"{args.image}.png")
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.trace:
        path = RESULTS / f"ablate_fit_{args.image}_trace.csv"
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["variant", "step", "stage", "loss", "psnr"])
            for name, change in TRACE.items():
                cfg = FitConfig(num_gaussians=args.gaussians, steps=args.steps, schedule="cosine", loss="l2",
                                coarse_to_fine=True, log_every=100, **change)
                res = Fitter(target, cfg).run()
                for h in res.history:
                    w.writerow([name, h.step, h.stage, f"{h.loss:.6g}", f"{h.psnr:.3f}"])
                fine = [h for h in res.history if h.stage == "fine"]
                print(f"{name:12s} fine-stage PSNR: " + " ".join(f"{h.step}:{h.psnr:.2f}" for h in fine), flush=True)
        return 0
    path = RESULTS / f"ablate_fit_{args.image}.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["variant", "psnr", "seconds", "steps", "changes"])
        for name, change in VARIANTS.items():
            cfg = FitConfig(num_gaussians=args.gaussians, steps=args.steps, **{**BASE, **change})
            t0 = time.perf_counter()
            res = Fitter(target, cfg).run()
            w.writerow([name, f"{res.psnr:.3f}", f"{time.perf_counter() - t0:.1f}", res.steps, change])
            f.flush()
            print(f"{name:34s} {res.psnr:6.2f} dB  {time.perf_counter() - t0:6.1f} s  {res.steps} steps", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
