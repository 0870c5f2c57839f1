"""What an encoder variant buys at equal rate, image by image, from two rd.py CSVs.

    python benchmarks/variant_delta.py --base benchmarks/results/rd_kodak_refit.csv:lgi \\
        --variant benchmarks/results/rd_kodak_s119.csv:lgi-s119 --rate 1.0 \\
        [--out benchmarks/results/delta_s119.csv]

A variant's file lands at a slightly different bpp from the base's at the same target, so its PSNR is
compared with the base's PSNR *moved to the variant's bpp* along the base's own curve of that image:
the slope in dB per doubling of the rate, between the base's point at ``--rate`` and its nearest other
rate (PSNR is close to linear in log-rate over a factor of two). Images missing from either file are
left out. MS-SSIM is moved the same way.
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

from _common import write_csv


def _rows(spec: str) -> dict[tuple[str, float], dict]:
    path, _, codec = spec.rpartition(":")
    with open(path) as f:
        return {(r["image"], float(r["setting"])): r for r in csv.DictReader(f) if r["codec"] == codec}


def _moved(base: dict, image: str, rate: float, bpp: float, key: str) -> float | None:
    """The base's ``key`` of ``image`` at ``bpp``, moved along its log-rate slope near ``rate``."""
    here = base[(image, rate)]
    others = [s for (im, s) in base if im == image and s != rate]
    if not others:
        return None
    near = min(others, key=lambda s: abs(math.log(s / rate)))
    there = base[(image, near)]
    b0, b1 = float(here["bpp"]), float(there["bpp"])
    slope = (float(there[key]) - float(here[key])) / math.log2(b1 / b0)
    return float(here[key]) + slope * math.log2(bpp / b0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="CSV:codec of the reference encoder")
    ap.add_argument("--variant", required=True, help="CSV:codec of the variant")
    ap.add_argument("--rate", type=float, required=True, help="the target bpp (rd.py's setting) to compare")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    base, var = _rows(args.base), _rows(args.variant)
    images = sorted(im for (im, s) in var if s == args.rate and (im, args.rate) in base)
    out = []
    for im in images:
        b, v = base[(im, args.rate)], var[(im, args.rate)]
        bpp = float(v["bpp"])
        psnr_at = _moved(base, im, args.rate, bpp, "psnr")
        ms_at = _moved(base, im, args.rate, bpp, "ms_ssim")
        out.append({"image": im, "base_bpp": float(b["bpp"]), "base_psnr": float(b["psnr"]),
                    "variant_bpp": bpp, "variant_psnr": float(v["psnr"]),
                    "delta_psnr_equal_rate": float(v["psnr"]) - psnr_at if psnr_at is not None else "",
                    "delta_ms_ssim_equal_rate": float(v["ms_ssim"]) - ms_at if ms_at is not None else "",
                    "base_encode_s": float(b["encode_s"]), "variant_encode_s": float(v["encode_s"])})
    if not out:
        print("no image is in both files at that rate")
        return 1
    print("| image | base bpp | base PSNR | variant bpp | variant PSNR | Δ dB at equal rate | Δ MS-SSIM |")
    print("|---|---|---|---|---|---|---|")
    for r in out:
        d = r["delta_psnr_equal_rate"]
        m = r["delta_ms_ssim_equal_rate"]
        print(f"| {r['image']} | {r['base_bpp']:.3f} | {r['base_psnr']:.2f} | {r['variant_bpp']:.3f} | "
              f"{r['variant_psnr']:.2f} | {d:+.3f} | {m:+.4f} |" if d != "" else f"| {r['image']} | (no slope) |")
    ds = [r["delta_psnr_equal_rate"] for r in out if r["delta_psnr_equal_rate"] != ""]
    ms = [r["delta_ms_ssim_equal_rate"] for r in out if r["delta_ms_ssim_equal_rate"] != ""]
    mean = sum(ds) / len(ds)
    print(f"\n{len(out)} images: mean bpp {sum(r['base_bpp'] for r in out) / len(out):.3f} → "
          f"{sum(r['variant_bpp'] for r in out) / len(out):.3f}, PSNR {sum(r['base_psnr'] for r in out) / len(out):.2f}"
          f" → {sum(r['variant_psnr'] for r in out) / len(out):.2f}; at equal rate {mean:+.3f} dB "
          f"({sum(d > 0 for d in ds)} of {len(ds)} images better), MS-SSIM {sum(ms) / len(ms):+.4f}")
    if args.out:
        write_csv(args.out, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
