"""What a decode costs per blend mode and renderer, on the same Gaussians, in one process.

    flock /tmp/lgi-bench.lock .nox/_shared-torch/bin/python benchmarks/bench_decode_blend.py FILE.lgi ... \\
        [--repeats 15] [--out benchmarks/results/decode_blend.csv]

For each ``.lgi`` file: the parse and dequantization (``lgi.decoding.prepare``), then the render of its
Gaussians at the stored size as the file says (its blend mode) and as the other blend would draw the
same set (``sum`` for a top-K file and the reverse), each through the torch-free native renderer and
through torch's CPU kernels. Median of ``--repeats`` after one warm-up call. ``uncovered``: the pixels
that no Gaussian reaches in the file's own blend (drawn black whatever the image; counted on a render of
the same set with every colour 1); ``holes``: those of them where the original image (the PNG in
``--images`` whose name the file's name contains, Kodak by default) is not dark (RGB sum > 0.6, as
bench_fit.py counts dark pixels), i.e. the black specks a viewer sees. ``--k K`` (repeatable) also
draws a top-K file's Gaussians with top-K width K through the native renderer (what the width costs
on the same set: rows with ``k`` = K).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from _common import KODAK, RESULTS, cpu_name, median_ms, write_csv
from PIL import Image


def _original(path: Path, images: Path) -> np.ndarray | None:
    """The image a file was made from: the PNG of ``images`` with the longest stem in the file's name."""
    names = sorted((p for p in images.glob("*.png") if p.stem in path.stem), key=lambda p: len(p.stem))
    if not names:
        return None
    return np.asarray(Image.open(names[-1]).convert("RGB"), dtype=np.float32) / 255


def time_file(path: Path, repeats: int, images: Path, other_k: tuple[int, ...] = ()) -> list[dict]:
    """The rows of one file: its parse, then each blend through each renderer."""
    import torch

    import lgi_gsplat2d
    from lgi.decoding import prepare
    from lgi_gsplat2d import native

    data = path.read_bytes()
    parse_ms = median_ms(lambda: prepare(data), repeats)
    plan = prepare(data)
    p, h = plan.params, plan.header
    t = {k: torch.from_numpy(v) for k, v in p.items()}
    ones = np.ones_like(p["colors"])
    cover = native.render(p["means"], p["scales"], p["rotations"], ones, plan.height, plan.width,
                          mode=h.render_mode, k=h.topk)
    uncovered = cover.max(axis=-1) == 0
    ref = _original(path, images)
    holes = int((uncovered & (ref.sum(axis=-1) > 0.6)).sum()) if ref is not None and ref.shape == cover.shape else ""
    rows = []
    cases = [(h.render_mode, h.topk), ("sum" if h.render_mode != "sum" else "topk", h.topk)]
    if h.render_mode != "sum":
        cases += [(h.render_mode, k) for k in other_k if k != h.topk]
    for mode, k in cases:
        def draw_native(mode=mode, k=k):
            return native.render(p["means"], p["scales"], p["rotations"], p["colors"], plan.height, plan.width,
                                 mode=mode, k=k)

        def draw_torch(mode=mode, k=k):
            return lgi_gsplat2d.render(t["means"], t["scales"], t["rotations"], t["colors"], plan.height,
                                       plan.width, mode=mode, k=k, backend="cpu")

        renderers = (("native", draw_native), ("torch-cpu", draw_torch)) if k == h.topk else (("native", draw_native),)
        for renderer, fn in renderers:
            ms = median_ms(fn, repeats)
            rows.append({"file": path.name, "gaussians": h.num_gaussians, "width": plan.width, "height": plan.height,
                         "stored_mode": h.render_mode, "mode": mode, "k": k if mode != "sum" else "",
                         "renderer": renderer,
                         "render_ms": round(ms, 2), "parse_ms": round(parse_ms, 2),
                         "uncovered": int(uncovered.sum()), "holes": holes,
                         "threads": torch.get_num_threads(), "cpu": cpu_name(),
                         "loadavg_1min": round(os.getloadavg()[0], 2),
                         "when": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")})
            print(f"{path.name} ({h.num_gaussians} Gaussians) {mode:9s} K={k if mode != 'sum' else '-':<2} {renderer:9s} {ms:6.1f} ms "
                  f"(parse {parse_ms:.1f} ms, {int(uncovered.sum())} uncovered, {holes} holes)", flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", type=Path, nargs="+")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--images", type=Path, default=KODAK, help="the originals, for the holes count")
    ap.add_argument("--out", type=Path, default=RESULTS / "decode_blend.csv")
    ap.add_argument("--k", type=int, action="append", default=[],
                    help="also draw top-K files with this top-K width (native renderer; repeatable)")
    args = ap.parse_args()
    rows = []
    for path in args.files:
        rows += time_file(path, args.repeats, args.images, tuple(args.k))
    write_csv(args.out, rows)
    print(f"parse and dequantize: median {statistics.median(r['parse_ms'] for r in rows):.1f} ms")
    for mode, k in sorted({(r["mode"], str(r["k"])) for r in rows}):
        for renderer in ("native", "torch-cpu"):
            mine = [r["render_ms"] for r in rows if r["mode"] == mode and str(r["k"]) == k and r["renderer"] == renderer]
            if mine:
                print(f"median {mode:9s} K={k:2s} {renderer:9s} {statistics.median(mine):.1f} ms over {len(mine)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
