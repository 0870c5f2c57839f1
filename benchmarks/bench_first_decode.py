"""The first `lgi decode` of a process, wall clock with the interpreter's start: native renderer vs torch.

    .nox/_shared-torch/bin/python tools/wheelhouse.py --prebuilt          # or: nox -s wheelhouse
    flock /tmp/lgi-bench.lock .nox/_shared-torch/bin/python benchmarks/bench_first_decode.py FILE.lgi \\
        [--wheels dist/wheelhouse] [--runs 10]

Each run is a new process, ``python -c "from lgi.cli import main; main(['decode', FILE, '-o', ...])"``,
timed from before it starts to its exit. Variants, run in turn (A B C A B C ...):

- ``wheel-native``: the lgi, lgi-dictco and lgi-gsplat2d wheels of ``--wheels`` installed into a
  temporary folder ahead of this interpreter's packages, ``CXX`` pointing at no compiler and an empty
  kernel cache: what a user of the wheel index gets (the prebuilt native renderer; torch never loads);
- ``wheel-torch``: the same with ``--backend cpu`` (the prebuilt torch extension: torch is imported);
- ``source-native`` / ``source-torch``: the source tree (editable install), kernels from the build cache
  ``$LGI_EXTENSIONS_DIR`` (built first, outside the timing).

Writes benchmarks/results/first_decode.csv (one row per run) and prints the medians.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
WHEELS = ("lgi", "lgi_dictco", "lgi_gsplat2d")


def _install(wheels: Path, site: Path) -> None:
    files = []
    for name in WHEELS:
        found = sorted(wheels.glob(f"{name}-*.whl"))
        if not found:
            raise SystemExit(f"no {name} wheel in {wheels}: build them with tools/wheelhouse.py --prebuilt")
        files.append(str(found[-1]))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), *files],
                   check=True)


def _run(env: dict, lgi_file: Path, out: Path, backend: str) -> tuple[float, str]:
    code = ("import sys\nfrom lgi.cli import main\n"
            f"sys.exit(main(['decode', {str(lgi_file)!r}, '-o', {str(out)!r}, '--backend', {backend!r}, "
            "'--json']))\n")
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"decode failed ({backend}):\n{res.stderr[-2000:]}")
    return wall, res.stdout.strip().splitlines()[-1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("lgi_file", type=Path)
    ap.add_argument("--wheels", type=Path, default=HERE.parent / "dist" / "wheelhouse")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--out", type=Path, default=RESULTS / "first_decode.csv")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="lgi-first-decode-") as tmp:
        tmp = Path(tmp)
        site = tmp / "site"
        _install(args.wheels, site)
        wheel_env = dict(os.environ, PYTHONPATH=str(site), CXX="/nonexistent/no-compiler",
                         LGI_EXTENSIONS_DIR=str(tmp / "empty-cache"))
        source_env = dict(os.environ)
        source_env.pop("PYTHONPATH", None)
        variants = {"wheel-native": (wheel_env, "auto"), "wheel-torch": (wheel_env, "cpu"),
                    "source-native": (source_env, "auto"), "source-torch": (source_env, "cpu")}
        for name in ("source-native", "source-torch"):  # builds (if need be) outside the timing
            _run(variants[name][0], args.lgi_file, tmp / "warm.png", variants[name][1])
        rows = []
        for r in range(args.runs):
            for name, (env, backend) in variants.items():
                wall, report = _run(env, args.lgi_file, tmp / f"{name}.png", backend)
                rep = json.loads(report)
                rows.append({"variant": name, "run": r, "wall_s": round(wall, 4),
                             "decode_s": rep["decode_seconds"], "startup_s": rep["startup_seconds"],
                             "renderer": rep.get("renderer", "torch"), "width": rep["width"],
                             "height": rep["height"], "file": args.lgi_file.name,
                             "cpu": platform.processor() or platform.machine(),
                             "loadavg_1min": round(os.getloadavg()[0], 2),
                             "when": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")})
        if (tmp / "empty-cache").exists():
            raise SystemExit("the wheel variants built something: the measurement is void")
        pngs = {n: (tmp / f"{n}.png").read_bytes() for n in variants}
        same = len(set(pngs.values())) == 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"{args.lgi_file.name}: {rows[0]['width']}x{rows[0]['height']}, {args.runs} runs each; "
          f"all variants wrote the same PNG: {same}")
    for name in variants:
        mine = [r for r in rows if r["variant"] == name]
        print(f"  {name:14s} wall median {statistics.median(r['wall_s'] for r in mine):.3f} s "
              f"(first {mine[0]['wall_s']:.3f}, max {max(r['wall_s'] for r in mine):.3f}); decode "
              f"{statistics.median(r['decode_s'] for r in mine) * 1000:.1f} ms, start-up "
              f"{statistics.median(r['startup_s'] for r in mine):.3f} s")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
