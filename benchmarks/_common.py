"""Helpers shared by the benchmark scripts (run as `python benchmarks/<script>.py`: this folder is on sys.path)."""

from __future__ import annotations

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
