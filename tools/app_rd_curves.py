"""Write the Kodak RD curves that `lgi app` draws: packages/lgi/src/lgi/data/rd_kodak_curves.csv.

    python tools/app_rd_curves.py

The mean (bpp, PSNR, MS-SSIM) per codec and setting over the images of benchmarks/results/rd_kodak.csv
(benchmarks/rd.py's `mean_curve`), plus the format-1 LGI run (rd_kodak_v1.csv) on the same images as
`lgi-v1`. The package ships this small file because an installed `lgi` has no benchmarks/ folder.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from rd import lgi_codecs, mean_curve  # noqa: E402 - benchmarks/ is not a package

RESULTS = ROOT / "benchmarks" / "results"
OUT = ROOT / "packages" / "lgi" / "src" / "lgi" / "data" / "rd_kodak_curves.csv"


def main() -> int:
    with open(RESULTS / "rd_kodak.csv") as f:
        rows = list(csv.DictReader(f))
    images = sorted({r["image"] for r in rows if r["codec"] == "lgi"})
    with open(RESULTS / "rd_kodak_v1.csv") as f:
        rows += [{**r, "codec": "lgi-v1"} for r in csv.DictReader(f) if r["codec"] == "lgi" and r["image"] in images]
    codecs = [*lgi_codecs(rows), *[c for c in ("jpeg", "webp", "avif", "jxl") if any(r["codec"] == c for r in rows)]]
    with open(OUT, "w", newline="") as f:
        f.write(f"# Kodak, mean of {len(images)} images ({', '.join(images)}); benchmarks/results/rd_kodak.csv "
                f"(lgi-v1: rd_kodak_v1.csv), written by tools/app_rd_curves.py\n")
        w = csv.writer(f)
        w.writerow(["codec", "bpp", "psnr", "ms_ssim"])
        for c in codecs:
            for b, p, m in zip(*mean_curve(rows, c, images)):
                w.writerow([c, f"{b:.5f}", f"{p:.4f}", f"{m:.5f}"])
    print(f"wrote {OUT.relative_to(ROOT)}: {', '.join(codecs)} on {len(images)} images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
