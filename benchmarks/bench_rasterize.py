"""Benchmark lgi_gsplat2d.render: every backend and the PyTorch reference, in the same run.

    flock /tmp/lgi-bench.lock python benchmarks/bench_rasterize.py
    python benchmarks/bench_rasterize.py --counts 10000 --repeats 30 --devices cpu

Scene (seeded, the same for every backend): N Gaussians with uniform random centres in the unit square,
standard deviations (s1, s2) each uniform in [0.5, 2] x sqrt(H W / N) pixels (so the set covers the image
a few times over, as a fitted set does), uniform random rotations and RGB colours in [0, 1]. Image
768 x 512 (W x H), C = 3. Blend modes: ``topk`` (K = 10, the default) and ``sum``.

Passes: ``forward`` is ``render`` under ``torch.no_grad()``; ``forward+backward`` is ``render`` followed by
``(image * weights).sum().backward()`` (fixed random weights) with respect to means, scales, rotations
and colours: one step of a fit. Each case runs ``--warmup`` times, then ``--repeats`` times (fewer when
one run exceeds ``--budget`` seconds / repeats, at least one), and reports the median and quartiles in
milliseconds. A case whose first run alone exceeds the budget (the reference at 10k and 50k Gaussians)
reports that single run: the reference has no build or cache to warm up, and this keeps the whole script
to a few minutes. Backends: ``cpu`` (C++/
OpenMP kernels), ``torch`` (the reference), and on a GPU ``cuda`` and ``torch`` on the GPU.

Writes benchmarks/results/rasterize_<device>.csv and .png (rasterize_cpu_<n>thread.* with --threads n).
Besides wall-clock quartiles the CSV has ``cpu_ms``, the median process CPU time of a call (all threads;
it includes OpenMP's spin-waiting), and the load average: figures taken while other jobs share the
machine are provisional. Never collected by pytest.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from _common import cpu_name

from lgi_gsplat2d import render

RESULTS = Path(__file__).resolve().parent / "results"
PASSES = ("forward", "forward+backward")


def make_scene(n: int, height: int, width: int, device: str, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    base = math.sqrt(height * width / n)
    means = torch.rand(n, 2, generator=g)
    sigma_px = (0.5 + 1.5 * torch.rand(n, 2, generator=g)) * base
    scales = sigma_px / torch.tensor([width, height])
    rotations = (torch.rand(n, generator=g) * 2 - 1) * math.pi
    colors = torch.rand(n, 3, generator=g)
    weights = torch.randn(height, width, 3, generator=g)
    return [t.to(device) for t in (means, scales, rotations, colors)], weights.to(device)


def time_case(inputs, weights, height, width, mode, k, backend, pass_, device, warmup, repeats, budget_s):
    leaves = [t.clone().requires_grad_(pass_ != "forward") for t in inputs]

    cpu_times = []

    def once() -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        cpu0 = time.process_time()
        start = time.perf_counter()
        if pass_ == "forward":
            with torch.no_grad():
                render(*leaves, height, width, mode=mode, k=k, backend=backend)
        else:
            for t in leaves:
                t.grad = None
            (render(*leaves, height, width, mode=mode, k=k, backend=backend) * weights).sum().backward()
        if device == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        cpu_times.append(time.process_time() - cpu0)
        return elapsed

    first = once()
    if first > budget_s:  # a slow case (the reference at 10k+): that run is the measurement
        return [first], cpu_times
    for _ in range(warmup - 1):
        once()
    n = max(1, min(repeats, int(budget_s / max(first, 1e-9))))
    del cpu_times[:]
    return [once() for _ in range(n)], cpu_times


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    combos = sorted({(r["mode"], r["pass"]) for r in rows})
    fig, axes = plt.subplots(1, len(combos), figsize=(4.2 * len(combos), 3.8), squeeze=False)
    for ax, (mode, pass_) in zip(axes[0], combos):
        for backend in sorted({r["backend"] for r in rows}):
            pts = sorted((r["n"], r["median_ms"]) for r in rows
                         if r["backend"] == backend and r["mode"] == mode and r["pass"] == pass_)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=backend)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("Gaussians")
        ax.set_ylabel("median ms")
        ax.set_title(f"{mode}, {pass_}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="768x512", help="W x H")
    parser.add_argument("--counts", default="1000,10000,50000")
    parser.add_argument("--modes", default="topk,sum")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--devices", default="cpu,cuda")
    parser.add_argument("--backends", default="native,torch")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--budget", type=float, default=10.0, help="seconds of timed runs per case (cap)")
    parser.add_argument("--threads", type=int, default=0, help="torch/OpenMP threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.lower().split("x"))
    counts = [int(c) for c in args.counts.split(",")]
    RESULTS.mkdir(parents=True, exist_ok=True)
    for device in args.devices.split(","):
        if device == "cuda" and not torch.cuda.is_available():
            print("cuda: no GPU, skipped")
            continue
        backends = [device if b == "native" else b for b in args.backends.split(",")]
        dev_name = torch.cuda.get_device_name(0) if device == "cuda" else cpu_name()
        load_start = os.getloadavg()[0]
        rows = []
        for n in counts:
            inputs, weights = make_scene(n, height, width, device)
            for mode in args.modes.split(","):
                for backend in backends:
                    for pass_ in PASSES:
                        runs, cpu_runs = time_case(inputs, weights, height, width, mode, args.k, backend, pass_,
                                                   device, args.warmup, args.repeats, args.budget)
                        ms = sorted(1e3 * r for r in runs)
                        q = statistics.quantiles(ms, n=4) if len(ms) > 1 else [ms[0], ms[0], ms[0]]
                        row = {"device": device, "device_name": dev_name, "threads": torch.get_num_threads(),
                               "backend": backend, "mode": mode, "k": args.k if mode == "topk" else "",
                               "pass": pass_, "n": n, "width": width, "height": height,
                               "median_ms": round(statistics.median(ms), 3), "q1_ms": round(q[0], 3),
                               "q3_ms": round(q[2], 3), "repeats": len(ms),
                               "cpu_ms": round(1e3 * statistics.median(cpu_runs), 3),
                               "load_avg": round(os.getloadavg()[0], 2),
                               "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds")}
                        rows.append(row)
                        print(f"{device:4} {backend:5} {mode:4} {pass_:16} n={n:<6} median {row['median_ms']:10.2f} ms"
                              f" (x{len(ms)}, load {row['load_avg']})", flush=True)
        stem = RESULTS / (f"rasterize_{device}" + (f"_{args.threads}thread" if args.threads else ""))
        with open(stem.with_suffix(".csv"), "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        title = (f"lgi_gsplat2d.render {width}x{height}, {dev_name}, {torch.get_num_threads()} threads, "
                 f"load {load_start:.1f}-{os.getloadavg()[0]:.1f}")
        plot(rows, stem.with_suffix(".png"), title)
        print(f"wrote {stem.with_suffix('.csv')} and .png")


if __name__ == "__main__":
    main()
