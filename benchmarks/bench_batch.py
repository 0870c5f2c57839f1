"""Throughput of `lgi batch encode` (local pool, optionally Ray) against `lgi encode` run one after another.

    python benchmarks/bench_batch.py                              # the issue's goal: 24 Kodak, default
                                                                  #   settings (about 75 min on 2 cores)
    python benchmarks/bench_batch.py --subset 4 --effort fast     # a quick subset
    python benchmarks/bench_batch.py --subset 4 --effort fast --ray   # also as Ray tasks (needs lgi[ray])

Every mode encodes the same images in the same run, each from a fresh process as a user would run it:
``sequential`` is one `lgi encode` per image (torch's default threads), ``pool`` is one `lgi batch
encode` (one worker per core, one thread each), ``ray`` is `lgi batch encode --ray local` (a local
Ray instance started by the command, one CPU per task). A tiny encode first warms the kernel and
extension caches, so that no mode pays a first build. Each mode runs once (minutes each): the machine's
load average is recorded before and after, since other work on a shared machine moves these numbers.

Writes benchmarks/results/batch_kodak.csv (one row per mode, appended: earlier runs are kept) and
batch_kodak.png (items per minute per mode, for the rows of this run). Columns: ``speedup`` is against
the sequential mode of the same run; ``overhead_per_task_s`` is wall × parallel slots / items minus the
mean time an encode took inside its task (process start, imports, first-call warm-up, scheduling);
``identical_bytes`` compares every output with the sequential one.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import KODAK, RESULTS, cpu_name

FIELDS = ["date", "mode", "images", "effort", "bpp", "jobs", "threads", "wall_s", "items_per_min", "speedup",
          "task_s_mean", "overhead_per_task_s", "identical_bytes", "load_before", "load_after", "cpu", "cores"]
LGI = [sys.executable, "-c", "import sys; from lgi.cli import main; sys.exit(main())"]


def lgi(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([*LGI, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"lgi {' '.join(args)} failed:\n{proc.stderr}")
    return proc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--subset", type=int, help="first N Kodak images (default: all 24)")
    ap.add_argument("--bpp", default="0.5")
    ap.add_argument("--effort", default="default", choices=["fast", "default", "max"])
    ap.add_argument("--ray", action="store_true", help="also run the batch as Ray tasks (--ray local)")
    ap.add_argument("--out", type=Path, default=RESULTS / "batch_kodak.csv")
    args = ap.parse_args()
    images = sorted(KODAK.glob("kodim*.png"))[: args.subset]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    work = Path(tempfile.mkdtemp(prefix="bench_batch_"))
    src = work / "in"
    src.mkdir()
    for p in images:
        (src / p.name).symlink_to(p)
    flags = ["--bpp", args.bpp, "--effort", args.effort]
    print(f"{cpu_name()}, {cores} cores; {len(images)} images, {' '.join(flags)}; in {work}", flush=True)

    # Warm-up: builds or loads the kernels once, so the first mode measured pays no build.
    from PIL import Image

    Image.open(images[0]).crop((0, 0, 32, 32)).save(work / "warm.png")
    lgi("encode", str(work / "warm.png"), "-o", str(work / "warm.lgi"), "--gaussians", "16", "--steps", "5", "-q")

    date = time.strftime("%Y-%m-%d %H:%M")
    rows = []

    def record(mode, jobs, threads, wall, task_s, outputs, slots):
        n = len(images)
        rows.append({"date": date, "mode": mode, "images": n, "effort": args.effort, "bpp": args.bpp, "jobs": jobs,
                     "threads": threads, "wall_s": round(wall, 2), "items_per_min": round(n / wall * 60, 3),
                     "speedup": round(rows[0]["wall_s"] / wall, 3) if rows else 1.0,
                     "task_s_mean": round(sum(task_s) / n, 2),
                     "overhead_per_task_s": round(wall * slots / n - sum(task_s) / n, 2),
                     "identical_bytes": all(outputs[k] == rows_bytes[k] for k in rows_bytes) if rows else True,
                     "load_before": load_before, "load_after": round(os.getloadavg()[0], 2), "cpu": cpu_name(),
                     "cores": cores})
        print(json.dumps(rows[-1]), flush=True)

    # 1. `lgi encode`, one image after another.
    load_before = round(os.getloadavg()[0], 2)
    seq = work / "sequential"
    seq.mkdir()
    t0 = time.perf_counter()
    task_s = []
    for p in images:
        report = json.loads(lgi("encode", str(p), "-o", str(seq / f"{p.stem}.lgi"), *flags, "--json").stdout)
        task_s.append(report["seconds"])
    wall = time.perf_counter() - t0
    rows_bytes = {p.stem: (seq / f"{p.stem}.lgi").read_bytes() for p in images}
    import torch

    record("sequential lgi encode", 1, torch.get_num_threads(), wall, task_s, rows_bytes, 1)

    # 2. (3.) `lgi batch encode`: the local pool, then Ray.
    modes = [("pool", [])] + ([("ray", ["--ray", "local"])] if args.ray else [])
    for mode, extra in modes:
        load_before = round(os.getloadavg()[0], 2)
        out = work / mode
        t0 = time.perf_counter()
        report = json.loads(lgi("batch", "encode", str(src), "-o", str(out), *flags, *extra, "-q", "--json").stdout)
        wall = time.perf_counter() - t0
        outputs = {p.stem: (out / f"{p.stem}.lgi").read_bytes() for p in images}
        slots = cores if mode == "ray" else report["jobs"]  # the local Ray instance: one CPU per core
        record(f"lgi batch ({mode})", report["jobs"], report["threads"], wall,
               [item["seconds"] for item in report["items"]], outputs, slots)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    new = not args.out.exists()
    with open(args.out, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        if new:
            writer.writeheader()
        writer.writerows(rows)
    plot(rows, args.out.with_suffix(".png"))
    return 0


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.8))
    names = [r["mode"] for r in rows]
    bars = ax.bar(names, [r["items_per_min"] for r in rows], color=["0.6", "tab:blue", "tab:orange"][: len(rows)])
    for bar, r in zip(bars, rows):
        ax.annotate(f"{r['items_per_min']:.2f}/min\n×{r['speedup']:.2f}", (bar.get_x() + bar.get_width() / 2,
                    bar.get_height()), ha="center", va="bottom", fontsize=9)
    ax.set_ylabel("images per minute")
    r0 = rows[0]
    ax.set_title(f"{r0['images']} Kodak images, --bpp {r0['bpp']} --effort {r0['effort']}, {r0['cores']} cores "
                 f"(load {r0['load_before']} before)", fontsize=10)
    ax.set_ylim(0, max(r["items_per_min"] for r in rows) * 1.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
