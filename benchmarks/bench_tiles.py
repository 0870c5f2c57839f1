"""Tiled against untiled fitting of a large photo, through the whole encoder (issue #18, item 3).

    python benchmarks/bench_tiles.py                           # one CLIC photo at 0.5 bpp
    python benchmarks/bench_tiles.py --photo 28d24b9c --bpp 0.5 --modes tiled

Each mode runs in its own process (so that its peak memory, the process's maximum resident set, is its
own): "untiled" fits the whole image as the encoder does below 2^22 pixels; "tiled" forces the tiles
(``tile_above = 0``, 1024-pixel cores, 32 pixels of overlap). Same target, seed and steps. Writes
benchmarks/results/tiles_clic.csv (resumed: rows already there are kept) and, for the tiled file, a crop
across the tile corner magnified 4x beside the untiled one (tiles_seam_PHOTO.png) to look for seams.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import RESULTS, cpu_name

CLIC = Path(__file__).resolve().parents[2] / "shared" / "data" / "clic2025"
FIELDS = ["photo", "mode", "bpp_target", "bytes", "bpp", "psnr", "gaussians", "tiles", "encode_s", "fit_s",
          "peak_rss_mb", "cpu"]


def run_one(photo: Path, mode: str, bpp: float, out_lgi: Path) -> dict:
    import torch

    from lgi.codec_cli import encode_target
    from lgi_train.runs import load_target

    torch.set_num_threads(2)
    target = load_target(photo)
    t0 = time.perf_counter()
    data, report = encode_target(target, bpp=bpp, tile_above=0 if mode == "tiled" else 1 << 40, encoder="v2")
    seconds = time.perf_counter() - t0
    out_lgi.write_bytes(data)
    h, w = target.shape[1:]
    return {"photo": photo.stem[:8], "mode": mode, "bpp_target": bpp, "bytes": len(data),
            "bpp": round(len(data) * 8 / (h * w), 4), "psnr": round(report["psnr"], 3),
            "gaussians": report["gaussians"], "tiles": len(_grid(h, w)) if mode == "tiled" else 1,
            "encode_s": round(seconds, 1), "fit_s": round(report["stage_seconds"]["fit"], 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), "cpu": cpu_name()}


def _grid(h: int, w: int):
    """The tiles the encoder's defaults cut an h x w image into."""
    from lgi_train.compress.encoder import EncodeOptions
    from lgi_train.compress.tiles import tile_grid

    return tile_grid(h, w, EncodeOptions.tile, EncodeOptions.tile_overlap)


def seam_crop(photo: Path, files: dict[str, Path], out: Path, size: int = 96, zoom: int = 4) -> None:
    """Crops around the corner where four tiles meet (or two), original | untiled | tiled, magnified."""
    import numpy as np
    from PIL import Image

    from lgi.decoding import decode

    ref = Image.open(photo).convert("RGB")
    w, h = ref.size
    tiles = _grid(h, w)
    cy = tiles[0].y1 if len(tiles) > 1 and tiles[0].y1 < h else h // 2
    cx = tiles[0].x1 if tiles[0].x1 < w else w // 2
    box = (cx - size // 2, cy - size // 2, cx + size // 2, cy + size // 2)
    panels = [ref.crop(box)]
    for mode in ("untiled", "tiled"):
        if mode in files:
            img = decode(files[mode].read_bytes()).image.clamp(0, 1).permute(1, 2, 0).numpy()
            panels.append(Image.fromarray((img * 255).round().astype(np.uint8)).crop(box))
    strip = Image.new("RGB", (len(panels) * size * zoom + (len(panels) - 1) * 8, size * zoom), "white")
    for i, p in enumerate(panels):
        strip.paste(p.resize((size * zoom, size * zoom), Image.NEAREST), (i * (size * zoom + 8), 0))
    strip.save(out, optimize=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photo", default="0c49a5cc", help="prefix of a CLIC photo's name")
    ap.add_argument("--bpp", type=float, default=0.5)
    ap.add_argument("--modes", default="tiled,untiled")
    ap.add_argument("--out", type=Path, default=RESULTS / "tiles_clic.csv")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one mode, print its row as JSON
    args = ap.parse_args()
    photo = next(CLIC.glob(f"{args.photo}*.png"))
    folder = Path(tempfile.gettempdir()) / "lgi_bench_tiles"  # the .lgi files, for the seam crop
    folder.mkdir(exist_ok=True)
    files = {m: folder / f"{photo.stem[:8]}_{m}_{args.bpp}.lgi" for m in ("tiled", "untiled")}
    if args.one:
        print(json.dumps(run_one(photo, args.one, args.bpp, files[args.one])))
        return
    rows = list(csv.DictReader(open(args.out))) if args.out.exists() else []
    for mode in args.modes.split(","):
        if any(r["photo"] == photo.stem[:8] and r["mode"] == mode and float(r["bpp_target"]) == args.bpp
               for r in rows):
            continue
        res = subprocess.run([sys.executable, __file__, "--photo", args.photo, "--bpp", str(args.bpp), "--one", mode],
                             capture_output=True, text=True, check=True)
        row = json.loads(res.stdout.strip().splitlines()[-1])
        print(row, flush=True)
        rows.append(row)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=FIELDS)
            writer.writeheader()
            writer.writerows(rows)
    present = {m: p for m, p in files.items() if p.exists()}
    if present:
        seam_crop(photo, present, RESULTS / f"tiles_seam_{photo.stem[:8]}.png")


if __name__ == "__main__":
    main()
