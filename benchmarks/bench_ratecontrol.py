"""How the encoder's rate control lands: probed size, coded size, passes, time (issue 17, item 3).

    flock /tmp/lgi-bench.lock python benchmarks/bench_ratecontrol.py --images kodim01,kodim05,kodim13,kodim23 \
        --bpp 0.25,0.5,1.0 --label shrink1.0 --finetune-shrink 1.0

Each (image, rate) is encoded once by ``encode_image`` with ``--bpp`` as the target (the default
options unless ``--fit-steps`` / ``--finetune-steps`` shorten them), and the encoder's own
``rate_log`` is recorded: the size the count search probed before fine-tuning, the size of the first
coded pass, how many passes and shrinks it took, and where the file landed relative to the target.
The ratio first-pass ÷ probed is the fine-tuning's shrinkage that ``EncodeOptions.finetune_shrink``
anticipates. Appends to benchmarks/results/ratecontrol.csv (rows keyed by ``--label``) and plots
landing vs target and seconds per label.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
from pathlib import Path

from _common import KODAK, RESULTS, psnr8, write_csv

FIELDS = ["label", "image", "target_bpp", "target_bytes", "fitted", "kept", "probed_bytes", "first_pass_bytes",
          "final_bytes", "shrink_ratio", "landing", "passes", "shrinks", "bpp", "psnr", "seconds",
          "fit_steps", "finetune_steps", "finetune_shrink"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", default="kodim01,kodim05,kodim13,kodim23")
    ap.add_argument("--bpp", default="0.25,0.5,1.0")
    ap.add_argument("--label", required=True, help="names this configuration's rows in the CSV")
    ap.add_argument("--finetune-shrink", type=float, default=None, help="EncodeOptions.finetune_shrink")
    ap.add_argument("--fit-steps", type=int, default=None)
    ap.add_argument("--finetune-steps", type=int, default=None)
    ap.add_argument("--out", type=Path, default=RESULTS / "ratecontrol.csv")
    args = ap.parse_args()
    import torch

    from lgi_train.compress.encoder import EncodeOptions, encode_image, target_bytes_for
    from lgi_train.runs import load_target

    torch.manual_seed(0)
    rows = []
    if args.out.exists():
        with args.out.open() as f:
            rows = [r for r in csv.DictReader(f) if r["label"] != args.label]
    for stem in args.images.split(","):
        target = load_target(KODAK / f"{stem}.png")
        h, w = target.shape[1:]
        for bpp in (float(b) for b in args.bpp.split(",")):
            opts = EncodeOptions(target_bytes=target_bytes_for(bpp, None, h, w))
            if args.finetune_shrink is not None:
                opts = dataclasses.replace(opts, finetune_shrink=args.finetune_shrink)
            if args.fit_steps is not None:
                opts = dataclasses.replace(opts, fit_steps=args.fit_steps)
            if args.finetune_steps is not None:
                opts = dataclasses.replace(opts, codec=dataclasses.replace(opts.codec,
                                                                           finetune_steps=args.finetune_steps))
            r = encode_image(target, opts)
            log = r.rate_log
            row = {"label": args.label, "image": stem, "target_bpp": bpp, "target_bytes": log["target_bytes"],
                   "fitted": log["fitted"], "kept": log["kept"], "probed_bytes": log["probed_bytes"],
                   "first_pass_bytes": log["first_pass_bytes"], "final_bytes": log["final_bytes"],
                   "shrink_ratio": round(log["first_pass_bytes"] / log["probed_bytes"], 4),
                   "landing": round(log["final_bytes"] / log["target_bytes"], 4), "passes": log["passes"],
                   "shrinks": log.get("shrinks", 0), "bpp": round(len(r.data) * 8 / (h * w), 4),
                   "psnr": round(psnr8(r.image, target), 3), "seconds": round(r.seconds, 1),
                   "fit_steps": opts.fit_steps, "finetune_steps": opts.codec.finetune_steps,
                   "finetune_shrink": log["finetune_shrink"]}
            print(row, flush=True)
            rows.append(row)
            write_csv(args.out, rows, FIELDS)
    _plot(rows, args.out.with_suffix(".png"))
    return 0


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(r["label"] for r in rows))
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for i, lab in enumerate(labels):
        sel = [r for r in rows if r["label"] == lab]
        xs = [float(r["target_bpp"]) * (1 + 0.03 * (i - len(labels) / 2)) for r in sel]
        a.scatter(xs, [float(r["landing"]) for r in sel], label=lab)
        b.scatter(xs, [float(r["seconds"]) for r in sel], label=lab)
    a.axhline(1.0, color="k", lw=0.8)
    a.axhline(0.95, color="k", lw=0.8, ls=":")
    a.set(xscale="log", xlabel="target bpp", ylabel="final size ÷ target", title="where the file lands")
    b.set(xscale="log", xlabel="target bpp", ylabel="encode seconds", title="encode time")
    a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
