"""Precision classes and context models of the .lgi codec, measured on the same fitted sets.

    python benchmarks/bench_precision.py --images kodim05,kodim23 --gaussians 6000

For every image one set is fitted (the encoder's fit), then coded without rate control:
  K1            one grid for every Gaussian (what format 1 did)
  K3, K4        3 / 4 precision classes (the encoder's default: 4), class width 4× in curvature
  K6w0.7        6 classes, width 4^0.7
  K1-fine       one grid, steps ×0.9 (to read the local slope of the rate–distortion curve)
each followed by the encoder's quantization-aware fine-tuning. Then, on the K1 payload, the entropy of
every value stream under the static per-stream model the format uses, against predictions from
already-decoded neighbours (the previous Gaussian in Morton order; the mean of the Gaussians in the
left, upper and upper-left cells of a 2^L-cell grid and earlier ones in the same cell) and against a
context on the decoded log-area m; and the entropy of the K4 class stream with and without context.

Also the spread of the closed-form curvature of every group and the quantization error the high-rate
model predicts for one grid and for four classes. Writes benchmarks/results/precision_classes.csv
(image, variant, bytes, bpp, PSNR, chunks), precision_context.csv (image, stream, model, bits per
Gaussian), precision_curvature.csv and precision_classes.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch
from _common import KODAK, RESULTS, plot_points_per_image, psnr8, write_csv


def entropy_bits(sym: np.ndarray) -> float:
    """Empirical entropy of ``sym`` in bits, summed over the symbols (a static model's ideal cost)."""
    _, c = np.unique(np.asarray(sym), return_counts=True)
    return float(-(c * np.log2(c / c.sum())).sum())


def context_bits(sym: np.ndarray, ctx: np.ndarray) -> tuple[float, int]:
    """Entropy with one static model per context; also the number of (context, symbol) table entries,
    which a file would have to carry (about 1.3 bits each in the format's table coding)."""
    total, entries = 0.0, 0
    for c in np.unique(ctx):
        total += entropy_bits(sym[ctx == c])
        entries += len(np.unique(sym[ctx == c]))
    return total, entries


def cell_prediction(q: np.ndarray, cells: np.ndarray, level: int, bits: tuple[int, int]) -> np.ndarray:
    """Mean of the causal neighbours of each Gaussian (Morton order): the Gaussians of the left, upper
    and upper-left cells of a grid of 2^level finest cells, and earlier ones in its own cell."""
    n = q.size
    cx, cy = cells[:, 0] >> level, cells[:, 1] >> level
    width = (1 << bits[0] >> level) + 2
    cid = (cy + 1) * width + (cx + 1)
    ncell = width * ((1 << bits[1] >> level) + 2)
    s, c = np.zeros(ncell), np.zeros(ncell)
    np.add.at(s, cid, q)
    np.add.at(c, cid, 1)
    nb_s = s[cid - 1] + s[cid - width] + s[cid - width - 1]
    nb_c = c[cid - 1] + c[cid - width] + c[cid - width - 1]
    starts = np.r_[True, cid[1:] != cid[:-1]]
    first = np.where(starts)[0][np.cumsum(starts) - 1]
    csum = np.cumsum(q) - q
    ts, tc = nb_s + csum - csum[first], nb_c + np.arange(n) - first
    return np.where(tc > 0, np.round(ts / np.maximum(tc, 1)), np.median(q)).astype(np.int64)


def m_bins(m: np.ndarray) -> np.ndarray:
    return np.digitize(m, np.quantile(m, [0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875]))


def context_rows(stem: str, payload, classes: tuple[np.ndarray, np.ndarray] | None) -> list[dict]:
    """Stream entropies of ``payload`` (Morton order) under each model; ``classes``: the K4 class of
    every Gaussian and its log-area, both in the fitted set's own Morton order."""
    n = payload.header.num_gaussians
    rows = []
    streams = {f"shape.{'muv'[d]}": payload.shape.scalars[:, d] for d in range(3)}
    streams.update({f"colour.{d}": payload.color.scalars[:, d] for d in range(payload.color.dims)})
    cells = payload.fine_cells()
    m_ctx = m_bins(payload.shape.scalars[:, 0])
    for name, q in streams.items():
        q = q.astype(np.int64)
        models = {"static (format)": (entropy_bits(q), 0),
                  "residual vs previous in Morton order": (entropy_bits(q - np.r_[np.median(q), q[:-1]]), 0)}
        for level in (3, 5):
            models[f"residual vs causal cells, L{level}"] = (
                entropy_bits(q - cell_prediction(q, cells, level, payload.header.pos_bits)), 0)
        if name != "shape.m":
            models["context: log-area m (8 bins)"] = context_bits(q, m_ctx)
        for model, (bits, entries) in models.items():
            rows.append({"image": stem, "stream": name, "model": model, "bits_per_gaussian": bits / n,
                         "table_entries": entries})
    if classes is not None:
        k, m = classes
        for model, bits in (("static (format)", entropy_bits(k)),
                            ("context: previous class", context_bits(k, np.r_[0, k[:-1]])[0]),
                            ("context: log-area m (8 bins)", context_bits(k, m_bins(m))[0])):
            rows.append({"image": stem, "stream": "classes (K4)", "model": model, "bits_per_gaussian": bits / n,
                         "table_entries": ""})
    return rows


def curvature_rows(stem: str, curvature: torch.Tensor, pixels: int) -> list[dict]:
    """Spread of the closed-form curvature per group (arithmetic over geometric mean: what one grid for
    everyone wastes), and the quantization error the high-rate model predicts (α·Δ²/12 per value, no
    fine-tuning) for one grid and for the encoder's four classes at the same mean log step."""
    from lgi_train.compress.codec import CodecSettings, assign_classes

    s = CodecSettings()
    a = curvature.double().clamp_min(1e-30)
    steps = torch.tensor([s.position_step_px, s.shape_step[0], s.color_step], dtype=torch.float64)
    pc = assign_classes(curvature, a.shape[0], 4)
    rows = []
    for g, name in enumerate(("position", "shape", "colour")):
        mult = 2.0 ** (pc.exps[g][pc.classes].double() / 2)
        mult = mult / torch.exp(torch.log(mult).mean())  # the same mean log step as one grid
        one = float((a[:, g] * steps[g] ** 2 / 12).sum() / pixels)
        four = float((a[:, g] * (steps[g] * mult) ** 2 / 12).sum() / pixels)
        rows.append({"image": stem, "group": name, "am_over_gm": float(a[:, g].mean() / torch.exp(torch.log(a[:, g]).mean())),
                     "mse_one_grid": one, "mse_four_classes": four})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", default="kodim05,kodim23")
    ap.add_argument("--gaussians", type=int, default=6000)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--fit-cache", type=Path, help="folder for fitted sets (reused when present)")
    ap.add_argument("--out", type=Path, default=RESULTS / "precision_classes.csv")
    args = ap.parse_args()

    from lgi_dictco.gauss.format import decode_lgi, encode_lgi, morton_encode
    from lgi_train.compress.codec import (
        CodecSettings,
        QuantizedSet,
        assign_classes,
        decode_to_tensors,
        finetune,
        render_decoded,
    )
    from lgi_train.compress.encoder import EncodeOptions
    from lgi_train.compress.sensitivity import calc_sensitivity
    from lgi_train.fit import Fitter
    from lgi_train.losses import make_loss
    from lgi_train.model import GaussianModel
    from lgi_train.runs import load_target

    base = CodecSettings()
    variants = {"K1": dataclasses.replace(base, precision_classes=1),
                "K1-fine": dataclasses.replace(base, precision_classes=1, color_step=base.color_step * 0.9,
                                               shape_step=tuple(s * 0.9 for s in base.shape_step)),
                "K3": dataclasses.replace(base, precision_classes=3),
                "K4": dataclasses.replace(base, precision_classes=4),
                "K6w0.7": dataclasses.replace(base, precision_classes=6, class_width=0.7)}
    fit_cfg = EncodeOptions().fit
    rows, ctx_rows, curv_rows = [], [], []
    for stem in args.images.split(","):
        target = load_target(KODAK / f"{stem}.png")
        h, w = target.shape[1:]
        cache = args.fit_cache / f"{stem}_{args.gaussians}_{args.steps}.pt" if args.fit_cache else None
        if cache is not None and cache.exists():
            model = GaussianModel.from_checkpoint(torch.load(cache))
        else:
            model = Fitter(target, fit_cfg.replace(num_gaussians=args.gaussians, steps=args.steps)).run().model
            model.quant = None
            if cache is not None:
                cache.parent.mkdir(parents=True, exist_ok=True)
                torch.save(model.state_for_checkpoint(), cache)
        with torch.no_grad():
            rows.append({"image": stem, "variant": "float", "bytes": "", "bpp": "", "psnr": psnr8(model.render(h, w), target),
                         "chunks": ""})
        sens = calc_sensitivity(model, h, w)
        curv_rows += curvature_rows(stem, sens.curvature, 3 * h * w)
        lrs = {"xy": fit_cfg.lr_position * base.finetune_lr_scale, "shape": fit_cfg.lr_scale * base.finetune_lr_scale,
               "color": fit_cfg.lr_color * base.finetune_lr_scale}
        for name, settings in variants.items():
            qset = QuantizedSet(model, h, w, settings, importance=sens)
            finetune(qset, target, settings.finetune_steps, lrs, make_loss(fit_cfg))
            data = encode_lgi(qset.to_payload())
            payload, params = decode_to_tensors(data)
            image = render_decoded(payload.header, params, h, w)
            rows.append({"image": stem, "variant": name, "bytes": len(data), "bpp": len(data) * 8 / (h * w),
                         "psnr": psnr8(image, target), "chunks": decode_lgi(data).chunk_bytes})
            print(f"{stem} {name:8s} {rows[-1]['bpp']:.4f} bpp {rows[-1]['psnr']:.2f} dB {rows[-1]['chunks']}", flush=True)
            if name == "K1":
                k1_payload = decode_lgi(data)
        classes = assign_classes(sens.curvature, model.num_gaussians, 4).classes.numpy()
        # Classes and log-areas of the fitted set, in its own Morton order (as a file would hold them).
        bits = k1_payload.header.pos_bits
        q = (model.xy.detach().clamp(0, 1 - 1e-7) * torch.tensor([1 << b for b in bits])).long().numpy()
        mine = np.argsort(morton_encode(q[:, 0], q[:, 1], *bits), kind="stable")
        log_area = model.log_scale.detach().sum(1).numpy()
        ctx_rows += context_rows(stem, k1_payload, (classes[mine], log_area[mine]))
    write_csv(args.out, rows, ["image", "variant", "bytes", "bpp", "psnr", "chunks"])
    write_csv(args.out.with_name("precision_context.csv"), ctx_rows,
              ["image", "stream", "model", "bits_per_gaussian", "table_entries"])
    write_csv(args.out.with_name("precision_curvature.csv"), curv_rows)
    print("\ncurvature spread and predicted quantization MSE (high-rate model, no fine-tuning):")
    for r in curv_rows:
        print(f"  {r['image']} {r['group']:8s} AM/GM {r['am_over_gm']:.2f}  one grid {r['mse_one_grid'] * 1e5:.2f}e-5"
              f"  four classes {r['mse_four_classes'] * 1e5:.2f}e-5")
    print("\ncontext models, bits per Gaussian (mean over images):")
    for stream in dict.fromkeys(r["stream"] for r in ctx_rows):
        for model in dict.fromkeys(r["model"] for r in ctx_rows if r["stream"] == stream):
            v = np.mean([r["bits_per_gaussian"] for r in ctx_rows if r["stream"] == stream and r["model"] == model])
            print(f"  {stream:13s} {model:38s} {v:.3f}")
    plot_points_per_image(rows, args.images.split(","), lambda r: None if r["variant"] == "float" else r["variant"],
                          args.out.with_suffix(".png"), lambda stem: f"{stem}, {args.gaussians} Gaussians")
    return 0


if __name__ == "__main__":
    sys.exit(main())
