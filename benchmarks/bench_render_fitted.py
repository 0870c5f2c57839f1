"""One training step's render on real fitted Gaussians: the torch CPU extension's forward and backward.

    flock /tmp/lgi-bench.lock .nox/_shared-torch/bin/python benchmarks/bench_render_fitted.py FILE.lgi ... \\
        [--repeats 60] [--k K] [--out benchmarks/results/render_fitted.csv]

bench_rasterize.py draws random scenes; an encoder's fit draws sets like the ones its files hold, whose
overlap and sizes differ. This takes the Gaussians of each ``.lgi`` file (decoded, at the stored size,
with the file's blend and K unless ``--k``) and times, in one process, ``render`` with gradients on
(the forward a fitting step runs: it also writes the top-K selections) and the backward pass of a fixed
random upstream gradient (``backward(retain_graph=True)`` on one forward, so only the backward is
timed). Median of ``--repeats`` after three warm-up calls, wall time and process CPU time (two
threads: CPU ≈ 2 × wall when both are busy). On a shared virtual machine single runs vary by 20 %;
compare variants in alternation (run, switch, run again).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from _common import RESULTS, cpu_name, write_csv


def _median_ms(fn, repeats: int) -> tuple[float, float]:
    for _ in range(3):
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall) * 1000, statistics.median(cpu) * 1000


def time_file(path: Path, repeats: int, k: int | None) -> dict:
    from lgi_dictco.gauss import decode
    from lgi_gsplat2d import render

    decoded = decode(path.read_bytes())
    header = decoded.header
    mode = header.render_mode
    k = k or header.topk
    h, w = header.height, header.width
    params = [torch.from_numpy(decoded.params[name]).clone().requires_grad_(True)
              for name in ("means", "scales", "rotations", "colors")]
    upstream = torch.randn(h, w, params[3].shape[1], generator=torch.Generator().manual_seed(0))

    def forward():
        return render(*params, h, w, mode=mode, k=k, backend="cpu")

    fwd = _median_ms(forward, repeats)
    image = forward()
    bwd = _median_ms(lambda: image.backward(upstream, retain_graph=True), repeats)
    return {"file": path.name, "gaussians": params[0].shape[0], "width": w, "height": h, "mode": mode, "k": k,
            "forward_ms": round(fwd[0], 2), "forward_cpu_ms": round(fwd[1], 2),
            "backward_ms": round(bwd[0], 2), "backward_cpu_ms": round(bwd[1], 2),
            "threads": torch.get_num_threads(), "cpu": cpu_name(),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--repeats", type=int, default=60)
    ap.add_argument("--k", type=int, help="top-K width to draw with (default: the file's)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, help=f"CSV to write (e.g. {RESULTS / 'render_fitted.csv'})")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for path in args.files:
        row = time_file(path, args.repeats, args.k)
        rows.append(row)
        print(f"{row['file']}: {row['gaussians']} Gaussians, forward {row['forward_ms']:.2f} ms "
              f"(CPU {row['forward_cpu_ms']:.2f}), backward {row['backward_ms']:.2f} ms "
              f"(CPU {row['backward_cpu_ms']:.2f})", flush=True)
    if len(rows) > 1:
        print(f"median over {len(rows)} files: forward {statistics.median(r['forward_ms'] for r in rows):.2f} ms, "
              f"backward {statistics.median(r['backward_ms'] for r in rows):.2f} ms")
    if args.out:
        write_csv(args.out, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
