"""What each step of the .lgi pipeline costs and buys: size and PSNR per variant, on fitted Kodak sets.

    python benchmarks/bench_codec_steps.py --images kodim05,kodim23,kodim15,kodim20 --gaussians 6000

For every image one set is fitted (the encoder's fit: sum blending, L2, cosine, coarse-to-fine), then
coded in several ways from the same fit. Variants:
  float          the fitted set, unquantized (no file)
  no-finetune    default quantizers, no quantization-aware fine-tuning
  default        default quantizers + fine-tuning (what `lgi encode` does, without rate control)
  rgb            colours quantized in RGB instead of the opponent space
  shape-vq256    shape through a 256-entry importance-weighted codebook
  color-vq256    colour through a 256-entry codebook
  pos-1px        1-pixel position grid instead of 0.5
  prune10-sens   10 % pruned by sensitivity (no re-fit), then default coding
  prune10-rand   10 % pruned at random (no re-fit), then default coding
Writes benchmarks/results/codec_steps.csv (per image and variant: bytes, bpp, PSNR, chunk sizes) and
codec_steps.png (mean bpp and PSNR per variant).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch
from _common import KODAK, RESULTS, psnr8


def code(model, target, settings, sens):
    from lgi_dictco.gauss.format import decode_lgi, encode_lgi
    from lgi_train.compress.codec import QuantizedSet, decode_to_tensors, finetune, render_decoded
    from lgi_train.compress.encoder import EncodeOptions
    from lgi_train.losses import make_loss

    h, w = target.shape[1:]
    fit = EncodeOptions().fit
    qset = QuantizedSet(model, h, w, settings, importance=sens)
    s = settings.finetune_lr_scale
    lrs = {"xy": fit.lr_position * s, "shape": fit.lr_scale * s, "color": fit.lr_color * s}
    finetune(qset, target, settings.finetune_steps, lrs, make_loss(fit))
    data = encode_lgi(qset.to_payload())
    payload, params = decode_to_tensors(data)
    image = render_decoded(payload.header, params, h, w)
    return data, image, decode_lgi(data).chunk_bytes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", default="kodim05,kodim23,kodim15,kodim20")
    ap.add_argument("--gaussians", type=int, default=6000)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=RESULTS / "codec_steps.csv")
    args = ap.parse_args()

    from lgi_train.compress.encoder import EncodeOptions, _pruned
    from lgi_train.compress.sensitivity import calc_sensitivity
    from lgi_train.fit import Fitter
    from lgi_train.runs import load_target

    base = EncodeOptions().codec
    variants = {
        "no-finetune": dataclasses.replace(base, finetune_steps=0),
        "default": base,
        "rgb": dataclasses.replace(base, color_space="rgb"),
        "shape-vq256": dataclasses.replace(base, shape_codebook=256),
        "color-vq256": dataclasses.replace(base, color_codebook=256),
        "pos-1px": dataclasses.replace(base, position_step_px=1.0),
    }
    rows = []
    for stem in args.images.split(","):
        target = load_target(KODAK / f"{stem}.png")
        h, w = target.shape[1:]
        cfg = EncodeOptions().fit.replace(num_gaussians=args.gaussians, steps=args.steps)
        model = Fitter(target, cfg).run().model
        model.quant = None
        with torch.no_grad():
            rows.append({"image": stem, "variant": "float", "bytes": "", "bpp": "",
                         "psnr": psnr8(model.render(h, w), target), "chunks": ""})
        sens = calc_sensitivity(model, h, w)
        for name, settings in variants.items():
            data, image, chunks = code(model, target, settings, sens)
            rows.append({"image": stem, "variant": name, "bytes": len(data), "bpp": len(data) * 8 / (h * w),
                         "psnr": psnr8(image, target), "chunks": chunks})
        n_keep = int(model.num_gaussians * 0.9)
        g = torch.Generator().manual_seed(0)
        for name, order in (("prune10-sens", torch.argsort(sens.importance, descending=True, stable=True)),
                            ("prune10-rand", torch.randperm(model.num_gaussians, generator=g))):
            sub = _pruned(model, order, n_keep)
            keep = order[:n_keep]
            sub_sens = sens.subset(keep)
            with torch.no_grad():
                before = psnr8(sub.render(h, w), target)
            data, image, chunks = code(sub, target, base, sub_sens)
            rows.append({"image": stem, "variant": name, "bytes": len(data), "bpp": len(data) * 8 / (h * w),
                         "psnr": psnr8(image, target), "chunks": chunks, "psnr_pruned_float": before})
        for r in rows[-9:]:
            print(f"{stem} {r['variant']:13s} {r['bpp'] if r['bpp'] == '' else round(r['bpp'], 4)!s:>7} bpp "
                  f"{r['psnr']:.2f} dB {r.get('psnr_pruned_float', '')}", flush=True)
    fields = ["image", "variant", "bytes", "bpp", "psnr", "psnr_pruned_float", "chunks"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=fields)
        wr.writeheader()
        wr.writerows(rows)
    names = ["float", "no-finetune", "default", *[v for v in variants if v not in ("no-finetune", "default")],
             "prune10-sens", "prune10-rand"]
    print("\nmean over images:")
    means = []
    for v in names:
        sel = [r for r in rows if r["variant"] == v]
        bpp = np.mean([r["bpp"] for r in sel]) if sel[0]["bpp"] != "" else float("nan")
        ps = np.mean([r["psnr"] for r in sel])
        means.append((v, bpp, ps))
        print(f"  {v:13s} {bpp:.4f} bpp  {ps:.2f} dB")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    axes[0].bar([m[0] for m in means], [m[1] for m in means])
    axes[0].set_ylabel("bpp")
    axes[1].bar([m[0] for m in means], [m[2] for m in means])
    axes[1].set_ylabel("PSNR (dB)")
    axes[1].set_ylim(min(m[2] for m in means) - 1, max(m[2] for m in means) + 0.5)
    for ax in axes:
        ax.tick_params(axis="x", rotation=60)
    fig.suptitle(f"{args.gaussians} Gaussians, {args.images}")
    fig.tight_layout()
    fig.savefig(args.out.with_suffix(".png"), dpi=120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
