"""Benchmark lgi_fused_ssim against pytorch_msssim, forward and forward+backward, in the same run.

    flock /tmp/lgi-bench.lock python benchmarks/bench_ssim.py            # CPU (and CUDA if present)
    python benchmarks/bench_ssim.py --sizes 768x512 --repeats 30 --devices cpu

For each device, image size (W x H, 3 channels, batch 1) and mode it times every available backend:
``lgi-cpu`` / ``lgi-cuda`` (the native kernels), ``lgi-torch`` (the pure-PyTorch reference) and
``pytorch_msssim`` (``ssim(data_range=1)``), with warm-up runs, then reports the median (and the
quartiles) of the repeats. ``forward`` is inference (no gradient, ``train=False``); ``forward+backward``
is ``(1 - ssim).backward()`` with respect to the first image. lgi uses its default "same" padding;
pytorch_msssim has only "valid" (the same amount of filtering, 10 pixels fewer per axis of output).
Writes benchmarks/results/ssim_<device>.csv and .png (ssim_cpu_<n>thread.* with --threads n). Never
collected by pytest.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from _common import cpu_name

from lgi_fused_ssim import fused_ssim

RESULTS = Path(__file__).resolve().parent / "results"
MODES = ("forward", "forward+backward")


def _backends(device: str) -> dict:
    from pytorch_msssim import ssim

    native = "cpu" if device == "cpu" else "cuda"
    return {
        f"lgi-{native}": lambda a, b, train: fused_ssim(a, b, train=train, backend=native),
        "lgi-torch": lambda a, b, train: fused_ssim(a, b, train=train, backend="torch"),
        "pytorch_msssim": lambda a, b, train: ssim(a, b, data_range=1, size_average=True),
    }


def _time_case(fn, x, y, mode: str, device: str, warmup: int, repeats: int, budget_s: float) -> list[float]:
    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    def once() -> float:
        sync()
        start = time.perf_counter()
        if mode == "forward":
            with torch.no_grad():
                fn(x, y, False)
        else:
            x.grad = None
            (1 - fn(x, y, True)).backward()
        sync()
        return time.perf_counter() - start

    first = max(once() for _ in range(max(warmup, 1)))
    # Keep slow peers (pytorch_msssim at 1536^2 takes seconds) within the budget, but never < 3 runs.
    n = max(3, min(repeats, int(budget_s / max(first, 1e-9))))
    return [once() for _ in range(n)]


def _plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = list(dict.fromkeys(r["size"] for r in rows))
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    fig, axes = plt.subplots(1, len(MODES), figsize=(6 * len(MODES), 4.5), squeeze=False)
    width = 0.8 / len(backends)
    for ax, mode in zip(axes[0], MODES):
        for k, backend in enumerate(backends):
            vals = []
            for size in sizes:
                match = [r for r in rows if r["size"] == size and r["mode"] == mode and r["backend"] == backend]
                vals.append(match[0]["median_ms"] if match else float("nan"))
            pos = [i + (k - (len(backends) - 1) / 2) * width for i in range(len(sizes))]
            bars = ax.bar(pos, vals, width, label=backend)
            ax.bar_label(bars, labels=[f"{v:.3g}" for v in vals], fontsize=7, rotation=90, padding=2)
        ax.set_xticks(range(len(sizes)), [f"{s}x3" for s in sizes])
        ax.set_yscale("log")
        ax.set_ylabel("median time (ms, log scale)")
        ax.set_title(mode)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="256x256,768x512,1536x1536", help="comma-separated WxH")
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--budget", type=float, default=20.0, help="seconds of repeats per case at most")
    parser.add_argument("--devices", default="auto", help="cpu, cuda, or auto (cpu, plus cuda if present)")
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave as is)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    devices = ["cpu", "cuda"] if args.devices == "auto" else args.devices.split(",")
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    for device in devices:
        name = torch.cuda.get_device_name(0) if device == "cuda" else cpu_name()
        threads = torch.get_num_threads()
        rows: list[dict] = []
        for w, h in sizes:
            gen = torch.Generator().manual_seed(0)
            base = torch.rand(args.batch, args.channels, h, w, generator=gen)
            y = (base + 0.1 * torch.randn(base.shape, generator=gen)).clamp(0, 1).to(device)
            for mode in MODES:
                case: dict[str, float] = {}
                for backend, fn in _backends(device).items():
                    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
                    x = base.to(device).requires_grad_(mode != "forward")
                    times = _time_case(fn, x, y, mode, device, args.warmup, args.repeats, args.budget)
                    q = statistics.quantiles(times, n=4) if len(times) > 1 else times * 3
                    case[backend] = statistics.median(times) * 1e3
                    rows.append({
                        "device": device, "device_name": name, "threads": threads, "backend": backend,
                        "size": f"{w}x{h}", "channels": args.channels, "batch": args.batch, "mode": mode,
                        "repeats": len(times), "median_ms": round(case[backend], 3),
                        "p25_ms": round(q[0] * 1e3, 3), "p75_ms": round(q[2] * 1e3, 3),
                        "loadavg_1m": round(load, 2), "torch": torch.__version__, "timestamp": stamp,
                    })
                peer = case["pytorch_msssim"]
                for row in rows[-len(case):]:
                    row["speedup_vs_pytorch_msssim"] = round(peer / row["median_ms"], 2)
                    print(f"{device:4} {row['size']:>9} {mode:16} {row['backend']:15} "
                          f"{row['median_ms']:10.2f} ms  x{row['speedup_vs_pytorch_msssim']:<6} "
                          f"({row['repeats']} runs)", flush=True)
        suffix = f"_{args.threads}thread" if args.threads > 0 and device == "cpu" else ""
        csv_path = args.out / f"ssim_{device}{suffix}.csv"
        with csv_path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        title = (f"SSIM, batch {args.batch}, {args.channels} channels, {device} ({name}, {threads} threads), "
                 f"torch {torch.__version__}, {stamp}")
        _plot(rows, csv_path.with_suffix(".png"), title)
        print(f"wrote {csv_path} and {csv_path.with_suffix('.png')}")


if __name__ == "__main__":
    main()
