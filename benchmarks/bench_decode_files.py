"""Decode time of real ``.lgi`` files, as ``lgi decode`` spends it: parse and price, then the whole decode.

    python benchmarks/rd.py --rates 0.5 --keep-files /tmp/files ...        # files of a real run
    flock /tmp/lgi-bench.lock .nox/_shared-torch/bin/python benchmarks/bench_decode_files.py /tmp/files/*.lgi \\
        [--repeats 15] [--label new] [--out benchmarks/results/decode_files.csv]

For every file, the median of ``--repeats`` calls (after three warm-up calls) of ``lgi.decoding.prepare``
(parse, dequantize, the cost bound and the band plan) and of ``lgi.decoding.decode`` (all of that and the
render, as a [C, H, W] tensor in [0, 1]); the summary line gives the medians over the files. To compare
two versions of the decoder, run this script under each alternately (e.g. the old sources first on
``PYTHONPATH``) and label the rows with ``--label``: on a shared virtual machine single runs vary by 10-20 %.
"""

from __future__ import annotations

import argparse
import statistics
from datetime import datetime, timezone
from pathlib import Path

import torch
from _common import cpu_name, median_ms, write_csv


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--label", default="", help="a name for this run's rows (e.g. the decoder version)")
    ap.add_argument("--out", type=Path, help="CSV to append to (e.g. benchmarks/results/decode_files.csv)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from lgi.decoding import decode, prepare, renderer

    rows = []
    for path in args.files:
        data = path.read_bytes()
        plan = prepare(data)
        rows.append({"label": args.label, "file": path.name, "gaussians": plan.header.num_gaussians,
                     "width": plan.width, "height": plan.height, "renderer": renderer(),
                     "prepare_ms": round(median_ms(lambda d=data: prepare(d), args.repeats, warmup=3), 3),
                     "decode_ms": round(median_ms(lambda d=data: decode(d), args.repeats, warmup=3), 3),
                     "threads": args.threads, "cpu": cpu_name(),
                     "when": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")})
    prep = statistics.median(r["prepare_ms"] for r in rows)
    dec = statistics.median(r["decode_ms"] for r in rows)
    print(f"{args.label or 'decode'}: {len(rows)} files, median prepare {prep:.2f} ms, median decode {dec:.2f} ms "
          f"({rows[0]['renderer']} renderer, {args.threads} threads)")
    if args.out:
        old = []
        if args.out.exists():
            import csv

            with open(args.out) as f:
                old = list(csv.DictReader(f))
        write_csv(args.out, old + rows, list(rows[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
