"""The decode budget against real files and forged ones (issue 41; docs/reliability.md, "The decode budget").

    python benchmarks/bench_decode_budget.py real FOLDER...    # the encoder's own .lgi files: priced work
    python benchmarks/bench_decode_budget.py forged            # forged files at and past every ceiling: timed
    python benchmarks/bench_decode_budget.py weights           # the cost of a top-K intersection against sum

``real``: for every ``.lgi`` under the folders (e.g. ``bench_encoder.py run --keep DIR``), its Gaussians
per stored pixel and, at 1/8, 1/4, 1, 4 and 16 times its size, the priced work per output tile and against
the default ceilings (``lgi_dictco.gauss.DecodeBudget``): results/decode_budget_real.csv and .png, and a
summary of the largest ratios per rate. ``forged``: files a forger writes from the format's primitives (identical
Gaussians in one cell: canvas-covering, tiny, or in between), the largest each default ceiling admits
and one more, each decoded in a fresh process as ``lgi.decode`` does it: refused (and how fast) or drawn
(seconds per output megapixel, peak memory): results/decode_budget_forged.csv. ``weights``: the time of one
intersection by blend (canvas-covering Gaussians, so every pixel of every tile is evaluated; identical
copies and random positions), the basis of ``work_weight``: results/decode_budget_weights.csv.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, cpu_name, write_csv  # noqa: E402

SCALES = (0.125, 0.25, 1.0, 4.0, 16.0)


def real(folders: list[str]) -> None:
    from lgi.decoding import prepare
    from lgi_dictco.gauss import read_header

    rows = []
    paths = sorted(p for folder in folders for p in Path(folder).rglob("*.lgi"))
    for path in paths:
        data = path.read_bytes()
        h = read_header(data)
        rate = re.search(r"_([0-9.]+)\.lgi$", path.name)
        for scale in SCALES:
            w, hh = max(1, round(h.width * scale)), max(1, round(h.height * scale))
            if w * hh > 1 << 28:
                continue
            plan = prepare(data, scale)
            tiles = math.ceil(plan.width / 16) * math.ceil(plan.height / 16)
            rows.append({"file": path.name, "rate": rate.group(1) if rate else "", "width": h.width,
                         "height": h.height, "gaussians": h.num_gaussians, "topk": plan.cost.slots,
                         "gaussians_per_pixel": h.num_gaussians / (h.width * h.height), "scale": scale,
                         "intersections": plan.cost.intersections, "work": plan.work,
                         "work_per_tile": plan.work / tiles, "work_limit": plan.limits[1],
                         "work_share": plan.work / plan.limits[1], "gaussian_limit": plan.limits[0],
                         "gaussian_share": h.num_gaussians / plan.limits[0]})
    out = RESULTS / "decode_budget_real.csv"
    write_csv(out, rows)
    _plot_real(rows, RESULTS / "decode_budget_real.png")
    print(f"{len(paths)} files; wrote {out} and decode_budget_real.png")
    by = {}
    for r in rows:
        by.setdefault(r["rate"], []).append(r)
    print("rate | files | max Gaussians/px | max work/tile at 1x | max share of the work limit (scale) | max share of the count limit")
    for rate, rs in sorted(by.items()):
        at1 = [r for r in rs if r["scale"] == 1.0]
        worst = max(rs, key=lambda r: r["work_share"])
        print(f"{rate} | {len(at1)} | {max(r['gaussians_per_pixel'] for r in at1):.4f} | "
              f"{max(r['work_per_tile'] for r in at1):.1f} | {worst['work_share']:.3f} ({worst['scale']:g}x) | "
              f"{max(r['gaussian_share'] for r in rs):.3f}")


def _plot_real(rows: list[dict], path: Path) -> None:
    """Each real file's share of the default work and count limits against the output scale, by rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    rates = sorted({r["rate"] for r in rows}, key=lambda x: float(x or 0))
    for i, rate in enumerate(rates):
        rs = [r for r in rows if r["rate"] == rate]
        for ax, key in zip(axes, ("work_share", "gaussian_share")):
            ax.scatter([float(r["scale"]) * (1 + 0.04 * (i - 2)) for r in rs], [float(r[key]) for r in rs], s=6,
                       label=f"{rate} bpp", alpha=0.6)
    for ax, name in zip(axes, ("share of the default work limit", "share of the default count limit")):
        ax.set_xscale("log")
        ax.axhline(1.0, color="red", lw=1)
        ax.set_xlabel("output scale (x the stored size)")
        ax.set_ylabel(name)
        ax.set_ylim(0, 1.1)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("The encoder's own Kodak files under the default decode budget (1.0 = refused)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


_DECODE = """
import json, sys, time
t0 = time.perf_counter()
import lgi
t1 = time.perf_counter()
try:
    out = lgi.decode(sys.argv[1], scale=float(sys.argv[2]))
    result = f"decodes {out.shape[1]}x{out.shape[0]}"
except lgi.LgiError as exc:
    result = "refused: " + str(exc)
t2 = time.perf_counter()
# VmHWM: this process's own peak (ru_maxrss would carry the parent's peak across fork and exec).
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"result": result, "import_s": t1 - t0, "decode_s": t2 - t1, "peak_mb": hwm / 1024}))
"""


def _forged_cases():
    """(name, bytes, scale): the largest each default ceiling admits, and one more."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "fuzz"))
    from lgi_targets import covering_at_limit, payload_file

    from lgi_dictco.gauss import GAUSSIANS_PER_PIXEL, MIN_GAUSSIANS

    cases = []
    for mode, k in (("sum", 10), ("topk", 10), ("topk", 32)):
        slots = 0 if mode == "sum" else k
        for (w, h), scale in (((768, 512), 1.0), ((768, 512), 4.0), ((2048, 1360), 1.0)):
            n = covering_at_limit(round(w * scale), round(h * scale), slots)
            for m in (n, n + 1):
                cases.append((f"covering_{mode}{k if slots else ''}_{w}x{h}_x{scale:g}_n{m}",
                              payload_file(m, w, h, log_scale=(2, 2.01), mode=mode, k=k, same=True), scale))
    # Many Gaussians, each in a tile or two: the count ceiling is what holds them.
    for w, h in ((768, 512), (64, 64)):
        n = max(MIN_GAUSSIANS, int(GAUSSIANS_PER_PIXEL * w * h))
        for m in (n, n + 1):
            cases.append((f"tiny_{w}x{h}_n{m}", payload_file(m, w, h, log_scale=(-8, -7.9), same=True), 1.0))
    # The format's most: 2^21 Gaussians (refused from the header).
    cases.append(("tiny_768x512_n2097152", payload_file(1 << 21, 768, 512, log_scale=(-8, -7.9), same=True), 1.0))
    # Gaussians of a few tiles each, as many as the count allows: work and count near both ceilings.
    n = int(GAUSSIANS_PER_PIXEL * 768 * 512)
    cases.append((f"mid_768x512_n{n}", payload_file(n, 768, 512, log_scale=(-4.5, -4.4), same=True), 1.0))
    return cases


def forged() -> None:
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, data, scale in _forged_cases():
            path = Path(tmp) / f"{name}.lgi"
            path.write_bytes(data)
            res = subprocess.run([sys.executable, "-c", _DECODE, str(path), str(scale)], capture_output=True,
                                 text=True, timeout=600)
            rec = json.loads(res.stdout.strip().splitlines()[-1])
            mp = 0.0
            m = re.match(r"decodes (\d+)x(\d+)", rec["result"])
            if m:
                mp = int(m.group(1)) * int(m.group(2)) / 1e6
            rows.append({"file": name, "bytes": len(data), "scale": scale, "result": rec["result"][:140],
                         "decode_s": round(rec["decode_s"], 3), "output_mp": round(mp, 3),
                         "s_per_mp": round(rec["decode_s"] / mp, 3) if mp else "",
                         "import_s": round(rec["import_s"], 3), "peak_mb": round(rec["peak_mb"])})
            print(f"{name}: {rows[-1]['result'][:70]} in {rec['decode_s']:.3f} s "
                  f"({rows[-1]['s_per_mp']} s/MP), {rec['peak_mb']:.0f} MB", flush=True)
    out = RESULTS / "decode_budget_forged.csv"
    write_csv(out, rows)
    print(f"{cpu_name()}; wrote {out}")


def weights() -> None:
    """Seconds per Gaussian-tile intersection of canvas-covering Gaussians, by blend (native renderer)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "fuzz"))
    from lgi_targets import payload_file

    from lgi.decoding import prepare, render_uint8

    rows = []
    # identical copies in one cell (the cheapest forgery: every q ties), and the same count at random
    # positions and shapes within the same narrow range (no ties, a random visiting order per pixel)
    for placement, same in (("identical", True), ("random", False)):
        first = len(rows)
        for mode, k in (("sum", 10), ("topk", 6), ("topk", 10), ("topk", 32)):
            plan = prepare(payload_file(200, 768, 512, log_scale=(2, 2.01), mode=mode, k=k, same=same),
                           max_work=1 << 30)
            render_uint8(plan)  # warm-up
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                render_uint8(plan)
                times.append(time.perf_counter() - t0)
            t = sorted(times)[2]
            rows.append({"placement": placement, "mode": mode, "k": k if mode != "sum" else 0,
                         "intersections": plan.cost.intersections, "seconds": round(t, 4),
                         "ns_per_intersection": round(t / plan.cost.intersections * 1e9, 1)})
        base = rows[first]["ns_per_intersection"]
        for r in rows[first:]:
            r["relative"] = round(r["ns_per_intersection"] / base, 2)
            print(r)
    write_csv(RESULTS / "decode_budget_weights.csv", rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("real")
    r.add_argument("folders", nargs="+")
    sub.add_parser("forged")
    sub.add_parser("weights")
    args = ap.parse_args()
    {"real": lambda: real(args.folders), "forged": forged, "weights": weights}[args.cmd]()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
