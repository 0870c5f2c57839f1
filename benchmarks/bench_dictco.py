"""Benchmarks of the DCAE codec (lgi-dictco): model sizes, coding speed, and a short rate-distortion run.

    python benchmarks/bench_dictco.py params                 # parameters per preset
    python benchmarks/bench_dictco.py timing --tiny CKPT     # encode/decode ms per Kodak image (CPU)
    python benchmarks/bench_dictco.py train                  # tiny preset, 3 λ, short runs on CLIC crops
    python benchmarks/bench_dictco.py rd                     # those checkpoints on Kodak vs JPEG / WebP
    python benchmarks/bench_dictco.py plot                   # redraw the figure from the CSV

Results go to benchmarks/results/dictco_*.csv and .png. Timings run single-threaded by default (the
machines are shared); wrap them in ``flock /tmp/lgi-bench.lock``. Not collected by pytest.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SHARED = ROOT.parent / "shared" / "data"
KODAK = SHARED / "kodak"
CLIC = SHARED / "clic2025"
RUNS = ROOT / "runs" / "bench_dictco"
LAMBDAS = (0.0018, 0.0067, 0.05)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} thread(s)"


def _write_csv(rows: list[dict], name: str) -> Path:
    from lgi_dictco.dcae.evaluate import write_csv

    path = RESULTS / name
    write_csv(rows, path)
    print(f"wrote {path.relative_to(ROOT)} ({len(rows)} rows)")
    return path


def cmd_params(args) -> None:
    from lgi_dictco.dcae import build_model, list_models, model_id

    rows = []
    for name in list_models():
        model = build_model(name)
        groups = {
            "g_a": model.g_a,
            "g_s": model.g_s,
            "h_a": model.h_a,
            "h_s": [model.h_s_scales, model.h_s_means],
            "entropy_slices": model.slices,
        }
        row = {"model": name, "id": model_id(name), "parameters": sum(p.numel() for p in model.parameters())}
        for key, mods in groups.items():
            mods = mods if isinstance(mods, list) else [mods]
            row[key] = sum(p.numel() for m in mods for p in m.parameters())
        rows.append(row)
        print(f"{name:<16} {row['parameters'] / 1e6:8.2f} M")
    _write_csv(rows, "dictco_params.csv")


def _model(name: str, checkpoint: str | None, device: torch.device):
    from lgi_dictco.dcae import build_model, load_model

    if checkpoint:
        model, _ = load_model(checkpoint, device)
        return model, "trained"
    torch.manual_seed(0)
    model = build_model(name).to(device).eval()
    model.update()
    return model, "random init"


def cmd_timing(args) -> None:
    from lgi_dictco.dcae import decode, encode
    from lgi_dictco.dcae.io import list_images, load_image

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    files = list_images(KODAK)
    rows = []
    for name in args.presets.split(","):
        ckpt = args.tiny if name == "dcae-tiny" else None
        model, weights = _model(name, ckpt, device)
        n = args.images if name.endswith("paper") else len(files)
        for path in files[:n]:
            x = load_image(path).to(device)
            data = encode(model, x)  # warm-up
            decode(model, data)
            enc, dec = [], []
            for _ in range(args.repeats):
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                data = encode(model, x)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t1 = time.perf_counter()
                decode(model, data)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t2 = time.perf_counter()
                enc.append(1000 * (t1 - t0))
                dec.append(1000 * (t2 - t1))
            h, w = x.shape[-2:]
            rows.append(
                {
                    "model": name,
                    "weights": weights,
                    "image": path.name,
                    "height": h,
                    "width": w,
                    "bytes": len(data),
                    "bpp": 8 * len(data) / (h * w),
                    "encode_ms": statistics.median(enc),
                    "decode_ms": statistics.median(dec),
                    "repeats": args.repeats,
                    "device": _device_name(device),
                }
            )
            print(
                f"{name:<16} {path.name} enc {rows[-1]['encode_ms']:8.1f} ms  dec {rows[-1]['decode_ms']:8.1f} ms"
            )
    _write_csv(rows, f"dictco_timing_{device.type}.csv")


def cmd_train(args) -> None:
    from lgi_dictco.dcae.train import TrainConfig, train

    for lmbda in [float(v) for v in args.lambdas.split(",")]:
        out = Path(args.runs) / f"lambda_{lmbda:g}"
        cfg = TrainConfig(
            data=str(CLIC),
            output=str(out),
            model="dcae-tiny",
            lmbda=lmbda,
            metric="mse",
            epochs=10_000,
            max_steps=args.steps,
            batch_size=args.batch_size,
            patch_size=256,
            repeats=8,
            learning_rate=args.lr,
            milestones=(args.decay_epoch,),
            gamma=0.2,
            num_workers=0,
            threads=args.threads,
            seed=0,
            device="cpu",
            resume="auto",
            log_every=10,
            progress=not args.quiet,
        )
        t0 = time.perf_counter()
        summary = train(cfg)
        print(
            f"λ={lmbda:g}: {summary['steps']} steps in {time.perf_counter() - t0:.0f} s -> {summary['last']}"
        )


def _peer(image: np.ndarray, codec: str, quality: int) -> tuple[int, np.ndarray]:
    from PIL import Image

    buf = io.BytesIO()
    if codec == "jpeg":
        Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    else:
        Image.fromarray(image).save(buf, format="WEBP", quality=quality, method=6)
    decoded = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return len(buf.getvalue()), decoded


def _psnr8(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def cmd_rd(args) -> None:
    from lgi_dictco.dcae import load_model
    from lgi_dictco.dcae.evaluate import evaluate
    from lgi_dictco.dcae.io import list_images, load_image, to_uint8

    torch.set_num_threads(args.threads)
    files = list_images(KODAK)[: args.kodak]
    rows = []
    for ckpt in sorted(Path(args.runs).glob("lambda_*/last.pt")):
        model, meta = load_model(ckpt)
        for r in evaluate(model, files, real=True, lmbda=meta["lmbda"], metric=meta["metric"]):
            rows.append(
                {
                    "codec": "dcae-tiny",
                    "setting": f"lambda={meta['lmbda']:g}",
                    "steps": meta["step"],
                    "image": r["file"],
                    "bpp": r["bpp"],
                    "psnr": r["psnr_decoded"],
                    "ms_ssim": r["ms_ssim"],
                    "bpp_est": r["bpp_est"],
                    "encode_ms": r["encode_ms"],
                    "decode_ms": r["decode_ms"],
                }
            )
        print(f"{ckpt.parent.name}: done")
    originals = {p.name: to_uint8(load_image(p)) for p in files}
    for codec, qualities in (("jpeg", range(5, 96, 10)), ("webp", range(5, 96, 10))):
        for q in qualities:
            for name, image in originals.items():
                t0 = time.perf_counter()
                n, decoded = _peer(image, codec, q)
                rows.append(
                    {
                        "codec": codec,
                        "setting": f"quality={q}",
                        "steps": "",
                        "image": name,
                        "bpp": 8 * n / (image.shape[0] * image.shape[1]),
                        "psnr": _psnr8(decoded, image),
                        "ms_ssim": "",
                        "bpp_est": "",
                        "encode_ms": 1000 * (time.perf_counter() - t0),
                        "decode_ms": "",
                    }
                )
    _write_csv(rows, "dictco_rd.csv")
    _plot(rows, Path(args.runs))


def _means(rows: list[dict]) -> dict[tuple[str, str], tuple[float, float]]:
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["codec"], r["setting"]), []).append(r)
    return {
        k: (float(np.mean([float(r["bpp"]) for r in v])), float(np.mean([float(r["psnr"]) for r in v])))
        for k, v in groups.items()
    }


def _plot(rows: list[dict], runs: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    means = _means(rows)
    dcae = sorted((v, s) for (c, s), v in means.items() if c == "dcae-tiny")
    fig, (ax, zoom, ax2) = plt.subplots(1, 3, figsize=(16, 4.5))
    for codec, style in (("jpeg", "s--"), ("webp", "^--")):
        pts = sorted(v for (c, _), v in means.items() if c == codec)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=f"{codec.upper()} (Pillow)")
    for a in (ax, zoom):
        a.plot(
            [p[0][0] for p in dcae],
            [p[0][1] for p in dcae],
            "o-",
            color="C3",
            label="DCAE tiny (short CPU run)",
        )
        a.set(xlabel="bits per pixel (real file size)", ylabel="PSNR (dB, RGB)")
        a.grid(alpha=0.3)
    for (bpp, psnr), setting in dcae:
        zoom.annotate(
            setting.replace("lambda=", "λ="), (bpp, psnr), textcoords="offset points", xytext=(4, -14)
        )
    ax.set(xlim=(0, 1.6), title=f"Kodak, first {len({r['image'] for r in rows})} images")
    ax.legend()
    zoom.set(title="DCAE tiny: rate moves with λ (zoom)")
    for log in sorted(runs.glob("lambda_*/train_log.csv")):
        with open(log) as f:
            data = list(csv.DictReader(f))
        ax2.plot([int(r["step"]) for r in data], [float(r["loss"]) for r in data], label=log.parent.name)
    ax2.set(
        xlabel="step (batch 4)",
        ylabel="loss λ·255²·MSE + bpp",
        yscale="log",
        title="training on CLIC 256² crops",
    )
    ax2.grid(alpha=0.3)
    ax2.legend()
    fig.tight_layout()
    path = RESULTS / "dictco_rd.png"
    fig.savefig(path, dpi=110)
    print(f"wrote {path.relative_to(ROOT)}")


def cmd_plot(args) -> None:
    with open(RESULTS / "dictco_rd.csv") as f:
        _plot(list(csv.DictReader(f)), Path(args.runs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("params").set_defaults(func=cmd_params)
    p = sub.add_parser("timing")
    p.add_argument("--presets", default="dcae-tiny,dcae-moe-tiny,dcae-paper,dcae-moe-paper")
    p.add_argument("--tiny", help="trained dcae-tiny checkpoint (else random weights)")
    p.add_argument("--images", type=int, default=3, help="Kodak images for the paper presets (all for tiny)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_timing)
    p = sub.add_parser("train")
    p.add_argument("--lambdas", default=",".join(map(str, LAMBDAS)))
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--decay-epoch", type=int, default=24, help="lr ×0.2 after this epoch (14 steps each)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", default=str(RUNS))
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("rd")
    p.add_argument("--runs", default=str(RUNS))
    p.add_argument("--kodak", type=int, default=8, help="first N Kodak images")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=cmd_rd)
    p = sub.add_parser("plot", help="redraw dictco_rd.png from dictco_rd.csv")
    p.add_argument("--runs", default=str(RUNS))
    p.set_defaults(func=cmd_plot)
    args = parser.parse_args(argv)
    if not KODAK.is_dir():
        print(f"data not found: {KODAK}", file=sys.stderr)
        return 1
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
