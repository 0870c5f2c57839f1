"""Fitting benchmark: PSNR against time on Kodak, per Gaussian count, init mode and configuration.

    python benchmarks/bench_fit.py --gaussians 10000 --max-seconds 120                 # all 24 images
    python benchmarks/bench_fit.py --subset 4 --gaussians 2000 --inits gradient,placement,slic,saliency,random

Configurations (``--configs``):
  image-gs       Image-GS defaults (``lgi fit --preset image-gs``): top-k blending (K = 10), L1 + 0.1·(1 − SSIM),
                 plateau schedule.
  image-gs-hard  the same with lgi-gsplat2d 0.1's top-k blend (hard cutoff, mode ``topk-hard``).
  fast-l2        ``lgi fit``'s defaults: sum blending, L2 loss, cosine schedule over ``--steps``,
                 coarse-to-fine (the default configuration here).
  fast           the same with L1 + 0.1·(1 − SSIM) (``lgi fit``'s defaults until 2026-12-04).
  fast-topk      ``fast`` with top-k blending (K = 10).
            ``--steps auto`` (the default) sizes the budget with ``lgi_train.fit.steps_for_budget``: a
            timing probe on this machine, so the schedule completes within ``--max-seconds``; the
            probe's own time counts against the budget (column probe_seconds).

Writes benchmarks/results/fit_kodak.csv (final PSNR per run), fit_kodak_curves.csv (step, seconds,
PSNR every 25 steps) and fit_kodak.png (mean PSNR against time per group). Rows already in the CSV
are reused, so an interrupted run resumes. PSNR here is on the float render clamped to [0, 1].
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
KODAK = ROOT.parent / "shared" / "data" / "kodak"
RESULTS = ROOT / "benchmarks" / "results"

CONFIGS = {
    "image-gs": dict(render_mode="topk", loss="l1_ssim", schedule="plateau", coarse_to_fine=False),
    "image-gs-hard": dict(render_mode="topk-hard", loss="l1_ssim", schedule="plateau", coarse_to_fine=False),
    "fast": dict(render_mode="sum", loss="l1_ssim", schedule="cosine", coarse_to_fine=True, coarse_fraction=0.5),
    "fast-topk": dict(render_mode="topk", loss="l1_ssim", schedule="cosine", coarse_to_fine=True,
                      coarse_fraction=0.5),
    # The default with the L2 loss (the fused one: no SSIM window per step), the metric being PSNR.
    "fast-l2": dict(render_mode="sum", loss="l2", schedule="cosine", coarse_to_fine=True, coarse_fraction=0.5),
}


def run_one(path: Path, n: int, init: str, config: str, steps: int, max_seconds: float, device: str):
    from lgi_train.config import FitConfig
    from lgi_train.fit import Fitter, steps_for_budget
    from lgi_train.runs import load_target

    target = load_target(path).to(device)
    cfg = FitConfig(num_gaussians=n, init=init, steps=steps, max_seconds=max_seconds, device=device, log_every=25,
                    **CONFIGS[config])
    probe_seconds = 0.0
    if steps == 0:  # auto: as many steps as the time budget holds, so the cosine schedule completes
        if cfg.schedule != "cosine":
            raise SystemExit("--steps auto needs a cosine-scheduled configuration")
        steps, probe_seconds = steps_for_budget(target, cfg, max_seconds)
        cfg = dataclasses.replace(cfg, steps=steps, max_seconds=max_seconds - probe_seconds)
    curve = []
    t0 = time.perf_counter()
    fitter = Fitter(target, cfg, on_step=lambda s: curve.append((s.step, s.seconds, s.psnr)))
    fitter.setup()
    init_seconds = time.perf_counter() - t0
    result = fitter.run()
    with torch.no_grad():
        out = result.model.render(*target.shape[1:]).clamp(0, 1)
    # Speckles: pixels rendered near black (RGB sum < 0.05) where the image is not (> 0.6).
    dark = int(((out.sum(0) < 0.05) & (target.sum(0) > 0.6)).sum())
    return result, init_seconds, probe_seconds, curve, dark


def plot(rows: list[dict], curves: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted({(r["config"], int(r["gaussians"]), r["init"]) for r in rows})
    fig, ax = plt.subplots(figsize=(8, 5))
    grid = np.linspace(0, max(float(c["seconds"]) for c in curves) if curves else 1, 100)
    for g in groups:
        per_image = []
        for im in {r["image"] for r in rows if (r["config"], int(r["gaussians"]), r["init"]) == g}:
            pts = [(float(c["seconds"]), float(c["psnr"])) for c in curves
                   if (c["config"], int(c["gaussians"]), c["init"], c["image"]) == (*g, im)]
            if len(pts) >= 2:
                t, p = zip(*sorted(pts))
                per_image.append(np.interp(grid, t, p, left=np.nan, right=p[-1]))
        if per_image:
            stack = np.array(per_image)
            valid = ~np.isnan(stack).all(axis=0)  # before the first logged step of every image: no point
            ax.plot(grid[valid], np.nanmean(stack[:, valid], axis=0),
                    label=f"{g[0]} N={g[1]} {g[2]} ({len(per_image)} img)")
    ax.set_title("coarse-to-fine runs: during the coarse stage the PSNR is against the downsampled target",
                 fontsize=9)
    ax.set_xlabel("seconds (CPU, init excluded)")
    ax.set_ylabel("mean PSNR (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--subset", type=int)
    ap.add_argument("--images")
    ap.add_argument("--gaussians", default="2000,10000")
    ap.add_argument("--inits", default="gradient")
    ap.add_argument("--configs", default="fast-l2")
    ap.add_argument("--steps", default="auto",
                    help="step budget, or 'auto' (cosine configs): sized from a timing probe to fit --max-seconds")
    ap.add_argument("--max-seconds", type=float, default=120.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path, default=RESULTS / "fit_kodak.csv")
    args = ap.parse_args()
    paths = sorted(KODAK.glob("kodim*.png"))
    if args.images:
        paths = [p for p in paths if p.stem in set(args.images.split(","))]
    elif args.subset:
        paths = paths[: args.subset]
    fields = ["image", "gaussians", "init", "config", "steps", "seconds", "init_seconds", "probe_seconds", "psnr",
              "stop", "device", "kept_step", "dark_pixels"]
    curve_path = args.out.with_name(args.out.stem + "_curves.csv")
    rows = list(csv.DictReader(open(args.out))) if args.out.exists() else []
    if rows:  # a file from before a column was added keeps its columns
        fields = [f for f in fields if f in rows[0]]
    curves = list(csv.DictReader(open(curve_path))) if curve_path.exists() else []
    done = {(r["image"], r["gaussians"], r["init"], r["config"]) for r in rows}
    out = open(args.out, "a", newline="")
    cout = open(curve_path, "a", newline="")
    w = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore")
    cw = csv.DictWriter(cout, fieldnames=["image", "gaussians", "init", "config", "step", "seconds", "psnr"])
    if not rows:
        w.writeheader()
    if not curves:
        cw.writeheader()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}", flush=True)
    for config in args.configs.split(","):
        for n in (int(x) for x in args.gaussians.split(",")):
            for init in args.inits.split(","):
                for path in paths:
                    key = (path.stem, str(n), init, config)
                    if key in done:
                        continue
                    steps = 0 if args.steps == "auto" else int(args.steps)
                    if steps == 0 and CONFIGS[config]["schedule"] == "plateau":
                        steps = 3000  # the plateau schedule stops itself; the step count is only a cap
                    res, init_s, probe_s, curve, dark = run_one(path, n, init, config, steps, args.max_seconds,
                                                          args.device)
                    row = {"image": path.stem, "gaussians": n, "init": init, "config": config, "steps": res.steps,
                           "seconds": round(res.seconds, 2), "init_seconds": round(init_s, 2),
                           "probe_seconds": round(probe_s, 2),
                           "psnr": round(res.psnr, 3), "stop": res.stop_reason, "device": args.device,
                           "kept_step": res.best_step if res.best_step is not None else res.steps,
                           "dark_pixels": dark}
                    w.writerow(row)
                    out.flush()
                    rows.append({k: str(v) for k, v in row.items()})
                    for step, sec, psnr in curve:
                        c = {"image": path.stem, "gaussians": n, "init": init, "config": config, "step": step,
                             "seconds": round(sec, 3), "psnr": round(psnr, 3)}
                        cw.writerow(c)
                        curves.append({k: str(v) for k, v in c.items()})
                    cout.flush()
                    print(f"{config} N={n} {init} {path.stem}: {res.psnr:.2f} dB in {res.seconds:.1f} s "
                          f"({res.steps} steps, {res.stop_reason}, kept step {row['kept_step']}; "
                          f"{dark} dark pixels; init {init_s:.1f} s)", flush=True)
    out.close()
    cout.close()
    print("\nmean PSNR per group (images):")
    for g in sorted({(r["config"], r["gaussians"], r["init"]) for r in rows}):
        sel = [r for r in rows if (r["config"], r["gaussians"], r["init"]) == g]
        print(f"  {g[0]:9s} N={g[1]:>6s} {g[2]:10s}: {np.mean([float(r['psnr']) for r in sel]):.2f} dB, "
              f"{np.mean([float(r['seconds']) for r in sel]):.1f} s mean ({len(sel)} images)")
    plot(rows, curves, args.out.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
