"""Helpers shared by the benchmark scripts (run as `python benchmarks/<script>.py`: this folder is on sys.path)."""

from __future__ import annotations

import csv
import math
import platform
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KODAK = ROOT.parent / "shared" / "data" / "kodak"
RESULTS = ROOT / "benchmarks" / "results"


def psnr8(img, target) -> float:
    """PSNR (dB) of a [C, H, W] render in [0, 1] after 8-bit rounding, against ``target``."""
    import torch

    mse = float(((torch.round(img.clamp(0, 1) * 255) / 255 - target) ** 2).mean())
    return 10 * math.log10(1 / mse)


def cpu_name() -> str:
    """The CPU model as /proc/cpuinfo names it (falls back to platform's guess)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_csv(path: Path, rows: list[dict], fields: list[str] | None = None) -> None:
    """``rows`` as a CSV at ``path`` (folders created); columns ``fields`` or the first row's keys."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields or list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def plot_points_per_image(rows: list[dict], images: list[str], label, path: Path, title, color=None) -> None:
    """One (bpp, PSNR) panel per image: every row of that image a labelled point; PNG at ``path``.

    ``label(row)`` names a point (None: not drawn), ``title(image)`` a panel, ``color(row)`` a colour.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(images), figsize=(5 * len(images), 4), squeeze=False)
    for ax, stem in zip(axes[0], images):
        for r in rows:
            if r["image"] == stem and label(r) is not None:
                ax.plot(r["bpp"], r["psnr"], "o", color=color(r) if color else None)
                ax.annotate(label(r), (r["bpp"], r["psnr"]), fontsize=8)
        ax.set_title(title(stem))
        ax.set_xlabel("bpp")
        ax.set_ylabel("PSNR (dB)")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def median_ms(fn, repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``repeats`` calls of ``fn`` in milliseconds, after ``warmup`` untimed calls."""
    import statistics
    import time

    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def image_paths(folder: Path, pattern: str, images: str | None = None, subset: int | None = None) -> list[Path]:
    """The images of ``folder`` matching ``pattern``, sorted: those named in ``images`` (comma-separated
    stems), else the first ``subset``, else all."""
    paths = sorted(folder.glob(pattern))
    if images:
        wanted = set(images.split(","))
        return [p for p in paths if p.stem in wanted]
    return paths[:subset] if subset else paths
