"""The per-image table of an rd.py run at one LGI target: LGI's point and each peer's PSNR at LGI's bpp.

    python benchmarks/rd_per_image.py benchmarks/results/rd_clic_refit05.csv --rate 0.5 [--codec lgi]

Each peer's PSNR is read on that peer's own curve of the image at LGI's bpp (linear interpolation
between its two nearest settings, as rd.py's summaries read it); a dash where LGI's bpp is outside the
peer's range. Markdown on stdout, for docs/codec.md.
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

from rd import at_rate

PEERS = ("jpeg", "webp", "avif", "jxl")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv", type=Path)
    ap.add_argument("--rate", type=float, required=True, help="LGI's target bpp (rd.py's setting)")
    ap.add_argument("--codec", default="lgi", help="the LGI rows' codec name")
    args = ap.parse_args()
    with open(args.csv) as f:
        rows = list(csv.DictReader(f))
    mine = sorted((r for r in rows if r["codec"] == args.codec and float(r["setting"]) == args.rate),
                  key=lambda r: r["image"])
    if not mine:
        print(f"no {args.codec} rows at {args.rate:g} bpp in {args.csv}")
        return 1
    peers = [p for p in PEERS if any(r["codec"] == p for r in rows)]
    print("| image | LGI | " + " | ".join(p.upper() for p in peers) + " | LGI − JPEG | Gaussians | encode | decode |")
    print("|---" * (6 + len(peers)) + "|")
    ahead = 0
    for r in mine:
        bpp, psnr = float(r["bpp"]), float(r["psnr"])
        at = {p: at_rate(rows, p, r["image"], bpp, "psnr") for p in peers}
        cells = [("—" if math.isnan(v) else f"{v:.2f}") for v in at.values()]
        lead = psnr - at.get("jpeg", math.nan)
        ahead += lead >= 0
        print(f"| {r['image'][:8]}… | {psnr:.2f} dB at {bpp:.3f} bpp | " + " | ".join(cells)
              + f" | {lead:+.2f} | {int(float(r['gaussians'])):,} | {float(r['encode_s']):.0f} s | "
                f"{float(r['decode_s']) * 1000:.0f} ms |")
    print(f"\nLGI at or above JPEG on {ahead} of {len(mine)} images.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
