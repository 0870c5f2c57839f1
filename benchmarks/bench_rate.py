"""What the rate term and finer steps buy, from one fit per image (issue 17, item 1).

    flock /tmp/lgi-bench.lock python benchmarks/bench_rate.py --images kodim23,kodim05 \
        --variants 1.0:0,0.8:0,0.8:6,0.8:17,0.65:17

Each image is fitted once (the encoder's fit, ``--gaussians`` Gaussians, ``--steps`` steps; cached in
``--cache``), then coded once per variant ``STEP_SCALE:LAMBDA``: the codec's value steps times
STEP_SCALE (relative to the first format-2 steps: colour 0.03, shape 0.2), quantization-aware fine-tuning with the rate term at LAMBDA dB per bpp (0: off), no rate
control, no pruning, so every variant codes the same Gaussians. Reported: bpp and PSNR of the file,
and each variant's PSNR gain over the first at equal rate, reading rate differences at ``--slope`` dB
per bpp (LGI's own slope from the Gaussian count near 0.5 bpp: 10 % fewer Gaussians cost ~0.3 dB).
Writes benchmarks/results/rate_term.csv and .png.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch
from _common import KODAK, RESULTS, plot_points_per_image, psnr8, write_csv


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", default="kodim23,kodim05")
    ap.add_argument("--variants", default="1.0:0,0.8:0,0.8:6,0.8:17,0.65:17")
    ap.add_argument("--gaussians", type=int, default=6000)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--slope", type=float, default=6.0)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/lgi-bench-fits"))
    ap.add_argument("--out", type=Path, default=RESULTS / "rate_term.csv")
    args = ap.parse_args()
    from lgi_dictco.gauss.format import encode_lgi
    from lgi_train.compress.codec import (
        CodecSettings,
        QuantizedSet,
        decode_to_tensors,
        finetune,
        render_decoded,
    )
    from lgi_train.compress.encoder import EncodeOptions, scaled_codec
    from lgi_train.compress.sensitivity import calc_sensitivity
    from lgi_train.fit import Fitter
    from lgi_train.losses import make_loss
    from lgi_train.model import GaussianModel
    from lgi_train.runs import load_target

    # Scales are relative to the steps of the first format-2 encoder (colour 0.03, shape 0.2).
    FIRST_STEPS = CodecSettings(color_step=0.03, shape_step=(0.2, 0.2, 0.2))  # noqa: N806
    variants = [(float(a), float(b)) for a, b in (v.split(":") for v in args.variants.split(","))]
    base_opts = EncodeOptions()
    cfg = base_opts.fit
    args.cache.mkdir(parents=True, exist_ok=True)
    rows = []
    for stem in args.images.split(","):
        target = load_target(KODAK / f"{stem}.png")
        h, w = target.shape[1:]
        cached = args.cache / f"{stem}_{args.gaussians}_{args.steps}.pt"
        if cached.exists():
            model = GaussianModel.from_checkpoint(torch.load(cached))
        else:
            model = Fitter(target, cfg.replace(num_gaussians=args.gaussians, steps=args.steps)).run().model
            model.quant = None
            torch.save(model.state_for_checkpoint(), cached)
        sens = calc_sensitivity(model, h, w)
        first = None
        for scale, lam in variants:
            codec = dataclasses.replace(scaled_codec(FIRST_STEPS, scale), rate_db=lam)
            lrs = {"xy": cfg.lr_position * codec.finetune_lr_scale, "shape": cfg.lr_scale * codec.finetune_lr_scale,
                   "color": cfg.lr_color * codec.finetune_lr_scale}
            t0 = time.perf_counter()
            qs = QuantizedSet(model, h, w, codec, importance=sens)
            finetune(qs, target, codec.finetune_steps, lrs, make_loss(cfg), rate_db=lam)
            data = encode_lgi(qs.to_payload())
            payload, params = decode_to_tensors(data)
            psnr = psnr8(render_decoded(payload.header, params, h, w), target)
            bpp = len(data) * 8 / (h * w)
            first = first or (bpp, psnr)
            row = {"image": stem, "step_scale": scale, "lambda_db": lam, "bpp": round(bpp, 4), "psnr": round(psnr, 3),
                   "gain_at_equal_rate_db": round(psnr - first[1] - args.slope * (bpp - first[0]), 3),
                   "shape_bytes": payload.chunk_bytes["SHAP"], "color_bytes": payload.chunk_bytes["COLR"],
                   "seconds": round(time.perf_counter() - t0, 1)}
            rows.append(row)
            print(row, flush=True)
    write_csv(args.out, rows)
    plot_points_per_image(rows, args.images.split(","), lambda r: f"{r['step_scale']}:{r['lambda_db']:g}",
                          args.out.with_suffix(".png"),
                          lambda stem: f"{stem}, {args.gaussians} Gaussians (step scale : λ dB/bpp)",
                          color=lambda r: "C0" if r["lambda_db"] == 0 else "C3")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
