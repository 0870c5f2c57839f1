"""The encoder (v3, lgi_train.encode) against the one before it (v2, lgi_train.compress.encoder), and
against JPEG / WebP / AVIF at their own speeds.

    python benchmarks/bench_encoder.py run --efforts default --rates 0.125,0.25,0.5,1.0          # 24 Kodak
    python benchmarks/bench_encoder.py run --efforts v2 --images kodim05,kodim14 --rates 0.5       # the baseline
    python benchmarks/bench_encoder.py run --efforts fast,max --rates 0.5 --subset 8
    python benchmarks/bench_encoder.py run --dataset clic --images 0c49a5cc --efforts default --rates 0.5
    python benchmarks/bench_encoder.py summary --v2-reference benchmarks/results/rd_kodak_widek.csv:lgi

One encode at a time, alternating nothing else: run it alone (timings are medians of single encodes).
Rows go to benchmarks/results/encoder_<dataset>.csv (rows already there are kept, so a run resumes);
``summary`` writes encoder_<dataset>_summary.md and encoder_<dataset>.png (PSNR against encode seconds at
0.5 bpp). v2's PSNR is deterministic, so its rows for the images not re-encoded here may come from an
earlier run's CSV (``--v2-reference CSV:codec``; those rows' times are not used).
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, cpu_name, image_paths  # noqa: E402
from rd import DATASETS, bd_rate, metrics  # noqa: E402

FIELDS = ["encoder", "image", "setting", "bytes", "bpp", "psnr", "ms_ssim", "encode_s", "decode_s", "gaussians",
          "stages"]
PEERS = ("jpeg", "webp", "avif")


def encode_v3(target: torch.Tensor, bpp: float, effort: str, device: str = "cpu"):
    import lgi

    result = lgi.encode_details(target, bpp=bpp, effort=effort, device=device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return result.data, result.stage_seconds


def encode_v2(target: torch.Tensor, bpp: float):
    from lgi_train.compress.encoder import EncodeOptions, encode_image, target_bytes_for

    h, w = target.shape[1:]
    result = encode_image(target, EncodeOptions(target_bytes=target_bytes_for(bpp, None, h, w)))
    return result.data, result.stage_seconds


def run(args) -> None:
    from lgi.decoding import decode, to_uint8

    folder, pattern = (Path(args.folder), "*.png") if args.folder else DATASETS[args.dataset]
    paths = image_paths(folder, pattern, args.images, args.subset)
    out = Path(args.out) if args.out else RESULTS / f"encoder_{args.dataset}.csv"
    done = set()
    if out.exists():
        with open(out) as f:
            done = {(r["encoder"], r["image"], r["setting"]) for r in csv.DictReader(f)}
    new = not out.exists()
    f = open(out, "a", newline="")
    writer = csv.DictWriter(f, fieldnames=FIELDS)
    if new:
        writer.writeheader()
    print(f"{cpu_name()}, torch {torch.__version__}, {torch.get_num_threads()} threads; {len(paths)} images",
          flush=True)
    for path in paths:
        ref = np.asarray(Image.open(path).convert("RGB"))
        target = torch.from_numpy(ref.astype(np.float32) / 255).permute(2, 0, 1).contiguous()
        h, w = ref.shape[:2]
        for rate in [float(r) for r in args.rates.split(",")]:
            for effort in args.efforts.split(","):
                name = ("v2" if effort == "v2" else f"v3-{effort}") + ("" if args.device == "cpu" else f"-{args.device}")
                if (name, path.stem, str(rate)) in done:
                    continue
                t0 = time.perf_counter()
                data, stages = (encode_v2(target, rate) if effort == "v2"
                                else encode_v3(target.to(args.device), rate, effort, args.device))
                encode_s = time.perf_counter() - t0
                if args.keep:
                    Path(args.keep).mkdir(parents=True, exist_ok=True)
                    (Path(args.keep) / f"{name}_{path.stem}_{rate:g}.lgi").write_bytes(data)
                t0 = time.perf_counter()
                decoded = decode(data)
                decode_s = time.perf_counter() - t0
                dec = to_uint8(decoded.image)
                psnr, msssim = metrics(dec, ref)
                row = {"encoder": name, "image": path.stem, "setting": rate, "bytes": len(data),
                       "bpp": len(data) * 8 / (h * w), "psnr": psnr, "ms_ssim": msssim, "encode_s": encode_s,
                       "decode_s": decode_s, "gaussians": decoded.header.num_gaussians,
                       "stages": " ".join(f"{k}={v:.2f}" for k, v in stages.items())}
                writer.writerow(row)
                f.flush()
                print(f"{path.stem} {name} {rate}: {row['bpp']:.4f} bpp {psnr:.3f} dB {encode_s:.1f} s "
                      f"({row['stages']})", flush=True)
    f.close()


def peers_at(ref: np.ndarray, nbytes: int) -> dict[str, tuple[float, float, int]]:
    """Per peer: (PSNR, encode seconds, bytes) at the largest quality within ``nbytes``."""
    from lgi.peers import PEERS as CODECS
    from lgi.peers import decode_u8, peer_at_most

    out = {}
    for name in PEERS:
        data, quality = peer_at_most(ref, nbytes, name)
        img = Image.fromarray(ref)
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            img.save(io.BytesIO(), format=CODECS[name].format, quality=quality, **CODECS[name].options)
            times.append(time.perf_counter() - t0)
        psnr, _ = metrics(decode_u8(data), ref)
        out[name] = (psnr, float(np.median(times)), len(data))
    return out


def summary(args) -> None:
    out = RESULTS / (args.csv or f"encoder_{args.dataset}.csv")
    with open(out) as f:
        rows = list(csv.DictReader(f))
    if args.v2_reference:
        path, _, codec = args.v2_reference.rpartition(":")
        have = {(r["image"], r["setting"]) for r in rows if r["encoder"] == "v2"}
        with open(path) as f:
            for r in csv.DictReader(f):
                if r["codec"] == codec and (r["image"], str(float(r["setting"]))) not in have:
                    rows.append({**r, "encoder": "v2", "setting": str(float(r["setting"])), "encode_s": "",
                                 "stages": "reference"})
    encoders = sorted({r["encoder"] for r in rows}, key=lambda e: (e != "v2", e))
    rates = sorted({float(r["setting"]) for r in rows})
    lines = [f"{cpu_name()}; `python benchmarks/bench_encoder.py summary` on {out.name}", "",
             "| encoder | rate | images | mean bpp | mean PSNR | mean MS-SSIM | median encode s | v2 on the same images |",
             "|---|---|---|---|---|---|---|---|"]
    by = {}
    for r in rows:
        by.setdefault((r["encoder"], float(r["setting"])), {})[r["image"]] = r
    for e in encoders:
        for rate in rates:
            cell = by.get((e, rate))
            if not cell:
                continue
            imgs = sorted(cell)
            times = [float(cell[i]["encode_s"]) for i in imgs if cell[i]["encode_s"]]
            v2 = by.get(("v2", rate), {})
            same = [i for i in imgs if i in v2]
            cmp = ""
            if e != "v2" and same:
                d_psnr = np.mean([float(cell[i]["psnr"]) - float(v2[i]["psnr"]) for i in same])
                d_bpp = np.mean([float(cell[i]["bpp"]) - float(v2[i]["bpp"]) for i in same])
                cmp = f"{d_psnr:+.3f} dB at {d_bpp:+.4f} bpp ({len(same)} images)"
            lines.append(f"| {e} | {rate} | {len(imgs)} | {np.mean([float(cell[i]['bpp']) for i in imgs]):.4f} | "
                         f"{np.mean([float(cell[i]['psnr']) for i in imgs]):.3f} | "
                         f"{np.mean([float(cell[i]['ms_ssim']) for i in imgs]):.4f} | "
                         f"{np.median(times) if times else float('nan'):.1f} | {cmp} |")
    # BD-rate of each v3 effort against v2, on the mean curves of the images both have at every rate
    lines.append("")
    for e in encoders:
        if e == "v2":
            continue
        own = [q for q in rates if (e, q) in by and ("v2", q) in by]
        common = sorted(i for i in {r["image"] for r in rows}
                        if all(i in by[(e, q)] and i in by[("v2", q)] for q in own))
        shared = own
        if len(common) and len(shared) >= 4:
            r1, d1 = mean_curve(by, "v2", common, shared)
            r2, d2 = mean_curve(by, e, common, shared)
            lines.append(f"BD-rate of {e} against v2 (PSNR, {len(common)} images, rates {shared}): "
                         f"{bd_rate(r1, d1, r2, d2):+.1f} %")
    peers = peer_points(args.dataset, by.get(("v3-default", 0.5), {}))
    if peers:
        lines += ["", "JPEG / WebP / AVIF at the largest quality within each v3-default 0.5 bpp file's size "
                  "(same images; Pillow, encode time median of 3):", ""]
        lines += [f"- {name}: {np.mean(ps):.3f} dB, {np.median(ts) * 1000:.1f} ms" for name, (ts, ps) in peers.items()]
    (RESULTS / f"{out.stem}_summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(rows, args.dataset, by, peers, out.stem)


def mean_curve(by, encoder: str, images: list[str], rates: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """(mean bpp, mean PSNR) of ``encoder`` at each rate, over ``images``."""
    return (np.array([np.mean([float(by[(encoder, q)][i]["bpp"]) for i in images]) for q in rates]),
            np.array([np.mean([float(by[(encoder, q)][i]["psnr"]) for i in images]) for q in rates]))


def peer_points(dataset: str, default: dict) -> dict[str, tuple[list[float], list[float]]]:
    """Per peer: (encode seconds, PSNR) of every image at the size of its v3-default file."""
    folder, _ = DATASETS[dataset]
    acc = {name: ([], []) for name in PEERS}
    for image, r in sorted(default.items()):
        path = next(folder.glob(f"{image}.png"), None)
        if path is None:
            continue
        ref = np.asarray(Image.open(path).convert("RGB"))
        for name, (p, t, _) in peers_at(ref, int(r["bytes"])).items():
            acc[name][0].append(t)
            acc[name][1].append(p)
    return {name: v for name, v in acc.items() if v[0]}


def plot(rows, dataset, by, peers, stem: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    rate = 0.5
    default = by.get(("v3-default", rate), {})
    for e in sorted({r["encoder"] for r in rows}):
        cell = by.get((e, rate), {})
        imgs = [i for i in cell if not default or i in default]
        times = [float(cell[i]["encode_s"]) for i in imgs if cell[i]["encode_s"]]
        if not times or (default and len(imgs) < len(default)):
            continue  # drawn only on the images of the default effort's run, with a time of this run
        t, p = np.median(times), np.mean([float(cell[i]["psnr"]) for i in imgs])
        ax.scatter([t], [p], s=60, label=f"LGI {e}: PSNR of {len(imgs)} images, time of {len(times)}",
                   marker="o" if e != "v2" else "s")
        ax.annotate(e, (t, p), textcoords="offset points", xytext=(6, 4), fontsize=8)
    for name, (ts, ps) in peers.items():
        ax.scatter([np.median(ts)], [np.mean(ps)], marker="^", s=60, label=f"{name.upper()} at LGI default's sizes")
    ax.set_xscale("log")
    ax.set_xlabel("encode seconds (median of each run; its threads in docs/encoder.md)")
    ax.set_ylabel(f"mean PSNR at {rate} bpp (dB)")
    ax.set_title(f"{dataset}: quality against encode time")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower center")
    fig.tight_layout()
    fig.savefig(RESULTS / f"{stem}.png", dpi=120)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--efforts", default="default", help="comma-separated: fast, default, max, v2 (the baseline)")
    r.add_argument("--rates", default="0.5")
    r.add_argument("--images")
    r.add_argument("--subset", type=int)
    r.add_argument("--dataset", default="kodak", choices=sorted(DATASETS))
    r.add_argument("--device", default="cpu", help="v3 only: cpu or cuda[:N] (rows named v3-EFFORT-cuda)")
    r.add_argument("--folder", help="PNG images from this folder instead of the dataset's")
    r.add_argument("--out", help="CSV to append to (default results/encoder_DATASET.csv)")
    r.add_argument("--keep", help="also write every .lgi file into this folder (ENCODER_IMAGE_RATE.lgi), e.g. "
                                   "for the decode budget's table of real files (docs/reliability.md)")
    s = sub.add_parser("summary")
    s.add_argument("--dataset", default="kodak", choices=sorted(DATASETS))
    s.add_argument("--v2-reference", help="CSV:codec — v2 rows of an earlier run for images not encoded here")
    s.add_argument("--csv", help="the run's CSV in results/ (default encoder_DATASET.csv); the summary and the plot "
                                 "are named after it")
    args = ap.parse_args()
    run(args) if args.cmd == "run" else summary(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
