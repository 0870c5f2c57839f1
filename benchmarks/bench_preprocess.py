"""Time every lgi-preprocess map on the 24 Kodak images, with the original texture method as the peer.

    flock /tmp/lgi-bench.lock python benchmarks/bench_preprocess.py [--repeats 3] [--peer-images 2]

For each image: decoding, each map on its own (median of --repeats runs after one warm-up image), and the
whole pipeline (``ImagePreprocessor.preprocess`` on the decoded image: every map, as ``lgi preprocess``
computes them). The peer is the original tools' texture map, one ``mahotas.features.haralick`` call per
32×32 tile (about 40× slower), timed on the first --peer-images images in the same run; the fast texture
map is checked against it there.

Writes benchmarks/results/preprocess_kodak.csv (one row per image and step) and preprocess_kodak.png.
Not collected by pytest.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "kodak"
GOAL_S = 3.0


MAPS = ("entropy", "gradient", "texture", "saliency", "segments", "distance", "skeleton", "placement")


def _bench_image(path: Path, pre, repeats: int, peer: bool) -> list[dict]:
    """Rows of (image, step, median, min, repeats) for one image; prints a one-line summary."""
    from lgi_preprocess import (
        distance_map,
        entropy_map,
        gradient_map,
        load_image,
        placement_map,
        saliency_map,
        skeleton_map,
        slic_segments,
        texture_map,
    )

    cfg = pre.config
    rows: list[dict] = []
    medians: dict[str, float] = {}

    def add(step: str, med: float, best: float, reps: int) -> None:
        medians[step] = med
        rows.append({"image": path.stem, "step": step, "median_s": f"{med:.5f}", "min_s": f"{best:.5f}",
                     "repeats": reps})

    med, best, rgb = _median_time(lambda: load_image(path), repeats)
    add("load", med, best, repeats)
    maps: dict[str, np.ndarray] = {}
    steps = {
        "entropy": lambda: entropy_map(rgb, cfg.entropy_tile_size),
        "gradient": lambda: gradient_map(rgb),
        "texture": lambda: texture_map(rgb, cfg.texture_tile_size, cfg.texture_step),
        "saliency": lambda: saliency_map(rgb),
        "segments": lambda: slic_segments(rgb, cfg.n_segments, cfg.compactness, cfg.sigma),
        "distance": lambda: distance_map(maps["segments"]),
        "skeleton": lambda: skeleton_map(maps["segments"], cfg.skeleton_min_size),
        "placement": lambda: placement_map(maps, cfg.weights),
    }
    for name in MAPS:
        med, best, maps[name] = _median_time(steps[name], repeats)
        add(name, med, best, repeats)
    med, best, _ = _median_time(lambda: pre.preprocess(rgb), repeats)
    add("all_maps", med, best, repeats)
    line = f"{path.stem}: all maps {med:.2f} s (min {best:.2f})"
    if peer:
        pmed, pbest, ref = _median_time(lambda: texture_map(rgb, method="mahotas"), 1)
        add("texture_mahotas_peer", pmed, pbest, 1)
        err = float(np.abs(ref - maps["texture"]).max())
        line += f"; texture {medians['texture']:.3f} s vs mahotas peer {pmed:.2f} s, max |diff| {err:.1e}"
    print(line, flush=True)
    return rows


def _median_time(fn, repeats: int) -> tuple[float, float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of kodim*.png")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--peer-images", type=int, default=2, help="images on which the mahotas peer is timed")
    ap.add_argument("--limit", type=int, default=None, help="only the first N images")
    args = ap.parse_args(argv)

    import cv2

    from lgi_preprocess import ImagePreprocessor, PreprocessConfig, load_image

    images = sorted(args.data.glob("kodim*.png"))[: args.limit]
    if not images:
        print(f"no kodim*.png in {args.data}", file=sys.stderr)
        return 1
    cfg = PreprocessConfig()
    pre = ImagePreprocessor(cfg)
    load0 = os.getloadavg()[0]

    t0 = time.perf_counter()
    pre.preprocess(load_image(images[0]))  # cold: imports of OpenCV, scikit-image, SciPy
    cold_s = time.perf_counter() - t0
    print(f"cold first call (imports included): {cold_s:.2f} s", flush=True)

    rows: list[dict] = []
    for k, path in enumerate(images):
        rows += _bench_image(path, pre, args.repeats, peer=k < args.peer_images)

    load1 = os.getloadavg()[0]
    args.out.mkdir(parents=True, exist_ok=True)
    csv_path = args.out / "preprocess_kodak.csv"
    with csv_path.open("w", newline="") as f:
        f.write(f"# lgi-preprocess map timings on {len(images)} Kodak images; {platform.processor() or platform.machine()}"
                f", {os.cpu_count()} CPUs, OpenCV threads {cv2.getNumThreads()}, load average {load0:.2f} -> "
                f"{load1:.2f}; cold first call {cold_s:.2f} s; python {platform.python_version()}\n")
        writer = csv.DictWriter(f, fieldnames=["image", "step", "median_s", "min_s", "repeats"])
        writer.writeheader()
        writer.writerows(rows)

    def per_step(step: str) -> list[float]:
        return [float(r["median_s"]) for r in rows if r["step"] == step]

    print(f"\n{'step':<22}{'mean s':>9}{'median s':>10}{'max s':>8}")
    for step in ["load", *MAPS, "all_maps", "texture_mahotas_peer"]:
        v = per_step(step)
        if v:
            print(f"{step:<22}{np.mean(v):>9.3f}{np.median(v):>10.3f}{np.max(v):>8.3f}")
    total = per_step("all_maps")
    print(f"\nall maps per image: max {max(total):.2f} s, goal <= {GOAL_S} s: {'met' if max(total) <= GOAL_S else 'MISSED'}"
          f" (load average {load0:.2f} -> {load1:.2f})")
    _plot(rows, list(MAPS), args.out / "preprocess_kodak.png", load0, load1)
    print(f"wrote {csv_path} and {args.out / 'preprocess_kodak.png'}")
    return 0


def _plot(rows: list[dict], steps: list[str], path: Path, load0: float, load1: float) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)", file=sys.stderr)
        return
    images = list(dict.fromkeys(r["image"] for r in rows))
    t = {(r["image"], r["step"]): float(r["median_s"]) for r in rows}
    fig, ax = plt.subplots(figsize=(12, 5))
    bottom = np.zeros(len(images))
    for step in steps:
        v = np.array([t[(im, step)] for im in images])
        ax.bar(images, v, bottom=bottom, label=step)
        bottom += v
    ax.plot(images, [t[(im, "all_maps")] for im in images], "k.-", label="whole pipeline")
    ax.axhline(GOAL_S, color="red", ls="--", lw=1, label=f"goal {GOAL_S:g} s")
    ax.set_ylabel("seconds (median)")
    ax.set_title(f"lgi-preprocess, per map, Kodak 768×512 (load average {load0:.1f} → {load1:.1f})")
    ax.tick_params(axis="x", rotation=60)
    ax.legend(ncol=5, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
