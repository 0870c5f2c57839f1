"""The prebuilt kernels of the platform wheels against the JIT build, in the same run.

    .nox/_shared-torch/bin/python tools/wheelhouse.py --prebuilt          # or: nox -s wheelhouse
    flock /tmp/lgi-bench.lock .nox/_shared-torch/bin/python benchmarks/bench_prebuilt.py [--wheels dist/wheelhouse]

Installs the lgi-gsplat2d and lgi-fused-ssim wheels of ``--wheels`` into a temporary folder (no
dependencies: this interpreter's torch) and times, each in its own process:

- ``jit``: the source tree's kernels, JIT-built (``LGI_PREBUILT=0``; ``$LGI_EXTENSIONS_DIR`` cache);
- ``prebuilt-<isa>``: the wheel's kernels for every CPU variant this CPU runs (``LGI_KERNEL_ISA``),
  with ``CXX`` pointing at no compiler, so that nothing can be JIT-built behind the measurement.

Cases: one fitting step's worth of work at 768 x 512, 10 000 Gaussians (``render`` forward and
forward+backward, top-k K = 10 and sum, the scene of bench_rasterize.py) and the fused SSIM of a
768 x 512 RGB pair (forward+backward). The variants run ``--rounds`` times in turn (A B C A B C ...)
so that drift of the machine spreads over all of them; each row is the median over rounds of each
process's median. Writes benchmarks/results/prebuilt_cpu.csv and .png.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
CASES = [("render", "topk", "forward"), ("render", "topk", "forward+backward"),
         ("render", "sum", "forward"), ("render", "sum", "forward+backward"),
         ("ssim", "-", "forward+backward")]


def child(repeats: int) -> None:
    """Time every case with the kernels this process loads; print one JSON object."""
    import torch
    from bench_rasterize import make_scene, time_case
    from bench_ssim import _time_case

    import lgi_fused_ssim
    import lgi_gsplat2d
    from lgi_fused_ssim import fused_ssim

    height, width, n = 512, 768, 10_000
    inputs, weights = make_scene(n, height, width, "cpu")
    g = torch.Generator().manual_seed(1)
    x = torch.rand(1, 3, height, width, generator=g).requires_grad_(True)
    y = torch.rand(1, 3, height, width, generator=g)
    out = {}
    for kind, mode, pass_ in CASES:
        if kind == "render":
            times, _ = time_case(inputs, weights, height, width, mode, 10, "cpu", pass_, "cpu", 2, repeats, 20.0)
        else:
            fn = lambda a, b, train: fused_ssim(a, b, train=train, backend="cpu")  # noqa: E731
            times = _time_case(fn, x, y, pass_, "cpu", 2, repeats, 20.0)
        out["|".join((kind, mode, pass_))] = statistics.median(times) * 1e3
    out["_status"] = {"gsplat2d": lgi_gsplat2d.kernel_status()["cpu"],
                      "fused_ssim": lgi_fused_ssim.kernel_status()["cpu"],
                      "gsplat2d_from": str(Path(lgi_gsplat2d.__file__).parent)}
    print(json.dumps(out))


def _install(wheels: Path, target: Path) -> None:
    files = [str(w) for pkg in ("lgi_gsplat2d", "lgi_fused_ssim") for w in sorted(wheels.glob(f"{pkg}-*.whl"))]
    if len(files) != 2:
        sys.exit(f"need one lgi_gsplat2d and one lgi_fused_ssim wheel in {wheels}, found {files}")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), *files],
                   check=True)
    if not (target / "lgi_gsplat2d" / "_prebuilt" / "manifest.json").is_file():
        sys.exit(f"{files[0]} has no prebuilt kernels: build it with tools/wheelhouse.py --prebuilt")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wheels", type=Path, default=ROOT / "dist" / "wheelhouse")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=9, help="timed calls per case and process")
    ap.add_argument("--threads", type=int, default=0, help="OMP_NUM_THREADS for the children (0: as is)")
    ap.add_argument("--out", type=Path, default=RESULTS / "prebuilt_cpu.csv")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.repeats)
        return

    from lgi_gsplat2d._backend import ISAS, _cpu_flags

    isas = [isa for isa, (needs, _) in ISAS.items() if all(f in _cpu_flags() for f in needs)]
    site = Path(tempfile.mkdtemp(prefix="lgi-bench-prebuilt-"))
    _install(args.wheels, site)
    base = dict(os.environ)
    if args.threads:
        base["OMP_NUM_THREADS"] = str(args.threads)
    variants = {"jit": dict(base, LGI_PREBUILT="0")}
    for isa in isas:
        variants[f"prebuilt-{isa}"] = dict(base, PYTHONPATH=os.pathsep.join([str(site), str(HERE)]),
                                           LGI_KERNEL_ISA=isa, CXX="/nonexistent/no-compiler")
    variants["jit"]["PYTHONPATH"] = str(HERE)
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    for r in range(args.rounds):
        for name, env in variants.items():
            res = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", "--repeats",
                                  str(args.repeats)], env=env, capture_output=True, text=True, cwd=HERE)
            if res.returncode != 0:
                sys.exit(f"{name} failed:\n{res.stderr[-3000:]}")
            runs[name].append(json.loads(res.stdout.strip().splitlines()[-1]))
            print(f"round {r + 1}/{args.rounds} {name}: {runs[name][-1]['_status']['gsplat2d']}", flush=True)

    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    from _common import cpu_name

    load = os.getloadavg()[0]
    rows = []
    for name, results in runs.items():
        status = results[0]["_status"]
        for kind, mode, pass_ in CASES:
            key = "|".join((kind, mode, pass_))
            ms = [res[key] for res in results]
            rows.append({"variant": name, "kernel": kind, "mode": mode, "pass": pass_,
                         "median_ms": round(statistics.median(ms), 2),
                         "rounds_ms": " ".join(f"{m:.2f}" for m in ms),
                         "gsplat2d": status["gsplat2d"], "fused_ssim": status["fused_ssim"],
                         "threads": args.threads or os.cpu_count(), "cpu": cpu_name(),
                         "loadavg_1min": round(load, 2), "when": stamp})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"{'case':<34}" + "".join(f"{v:>18}" for v in variants))
    for kind, mode, pass_ in CASES:
        cells = [next(r["median_ms"] for r in rows if r["variant"] == v and r["kernel"] == kind
                      and r["mode"] == mode and r["pass"] == pass_) for v in variants]
        print(f"{kind + ' ' + mode + ' ' + pass_:<34}" + "".join(f"{c:>15.2f} ms" for c in cells))
    _plot(rows, list(variants), args.out.with_suffix(".png"), f"{cpu_name()}, load {load:.2f}")
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


def _plot(rows: list[dict], variants: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.8))
    width = 0.8 / len(variants)
    for i, v in enumerate(variants):
        ms = [next(r["median_ms"] for r in rows if r["variant"] == v and (r["kernel"], r["mode"], r["pass"]) == c)
              for c in CASES]
        ax.bar([j + i * width for j in range(len(CASES))], ms, width, label=v)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(CASES))])
    ax.set_xticklabels([f"{k} {m}\n{p}" for k, m, p in CASES], fontsize=8)
    ax.set_ylabel("median ms (10k Gaussians / SSIM, 768x512)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
