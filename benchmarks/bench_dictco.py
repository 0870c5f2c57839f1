"""Benchmarks of the DCAE codec (lgi-dictco): model sizes, coding speed, and a short rate-distortion run.

    python benchmarks/bench_dictco.py params                 # parameters per preset
    python benchmarks/bench_dictco.py timing --tiny CKPT     # encode/decode ms per Kodak image (CPU)
    python benchmarks/bench_dictco.py train                  # tiny preset, 3 λ, short runs on CLIC crops
    python benchmarks/bench_dictco.py rd                     # the shipped models on the 24 Kodak images vs
                                                             #   JPEG / WebP / AVIF: dictco_rd_shipped.*
    python benchmarks/bench_dictco.py rd --runs DIR          # DIR/*/last.pt instead: dictco_rd.*
    python benchmarks/bench_dictco.py plot                   # redraw the figure from the rd CSV

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
#: LGI's current Kodak curve (rd.py, 0.125-1.5 bpp), drawn in the figure beside the learned codec's.
LGI_CURVE = "rd_kodak_widek.csv"


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
        row["macs_per_pixel"] = _macs_per_pixel(model)
        rows.append(row)
        print(f"{name:<16} {row['parameters'] / 1e6:8.2f} M parameters, {row['macs_per_pixel'] / 1e3:8.1f} kMAC/pixel")
    _write_csv(rows, "dictco_params.csv")


def _macs_per_pixel(model, size: int = 256) -> float:
    """Multiply-accumulates of one forward pass (analysis, entropy model, synthesis) per image pixel, as
    torch's FLOP counter sees them (convolutions, matrix products and attention; 2 FLOPs = 1 MAC), on a
    size x size image."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:  # with autograd on: torch's module tracker needs it for the experts' dictionaries
        model.eval()(torch.rand(1, 3, size, size))
    return counter.get_total_flops() / 2 / (size * size)


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


def _dcae_models(args, device: torch.device) -> list[tuple[str, object, float]]:
    """(setting, ready model, λ) of the shipped weights, or of every RUNS/*/last.pt with --runs."""
    from lgi_dictco.dcae import load_model
    from lgi_dictco.dcae.pretrained import list_pretrained, load_pretrained

    if args.runs:
        out = []
        for ckpt in sorted(Path(args.runs).glob("*/last.pt")):
            model, meta = load_model(ckpt, device)
            out.append((f"{ckpt.parent.name} λ={meta['lmbda']:g}", model, float(meta["lmbda"])))
        return out
    return [(f"q{m.quality}", load_pretrained(m.quality, device)[0], m.lmbda) for m in list_pretrained()]


def _lgi_curve() -> tuple[np.ndarray, np.ndarray] | None:
    """LGI's mean Kodak curve from its latest rd.py result (results/LGI_CURVE), for the figure."""
    from rd import mean_curve

    path = RESULTS / LGI_CURVE
    if not path.is_file():
        return None
    with open(path) as f:
        rows = [r for r in csv.DictReader(f) if r["codec"] == "lgi"]
    images = sorted({r["image"] for r in rows})
    r, p, _ = mean_curve(rows, "lgi", images)
    return (r, p) if r.size else None


def cmd_rd(args) -> None:
    """The DCAE models on Kodak with real files, JPEG / WebP / AVIF (Pillow) in the same run."""
    from PIL import Image
    from rd import metrics, pillow_codecs, run_pillow

    from lgi_dictco.dcae import decode, encode
    from lgi_dictco.dcae.io import list_images, load_image, to_uint8

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    files = list_images(KODAK)[: args.kodak]
    rows = []
    for setting, model, lmbda in _dcae_models(args, device):
        for path in files:
            x = load_image(path).to(device)
            ref = np.asarray(Image.open(path).convert("RGB"))
            with torch.no_grad():
                out = model(x)
            bits = sum(-torch.log2(lik).sum().item() for lik in out["likelihoods"].values())
            encode(model, x, lmbda=lmbda, metric="mse")  # warm-up
            _sync(device)
            t0 = time.perf_counter()
            data = encode(model, x, lmbda=lmbda, metric="mse")
            _sync(device)
            t1 = time.perf_counter()
            x_hat, _ = decode(model, data)
            _sync(device)
            t2 = time.perf_counter()
            again, _ = decode(model, data)
            psnr, msssim = metrics(to_uint8(x_hat), ref)
            h, w = ref.shape[:2]
            rows.append({
                "codec": "dcae", "image": path.stem, "setting": setting, "bytes": len(data),
                "bpp": 8 * len(data) / (h * w), "psnr": psnr, "ms_ssim": msssim, "encode_s": t1 - t0,
                "decode_s": t2 - t1, "bpp_est": bits / (h * w),
                "decode_matches_encoder": bool(torch.equal(x_hat, out["x_hat"].clamp(0, 1))),
                "decode_repeatable": bool(torch.equal(x_hat, again)), "device": _device_name(device),
            })
        print(f"dcae {setting}: {np.mean([r['bpp'] for r in rows if r['setting'] == setting]):.3f} bpp, "
              f"{np.mean([r['psnr'] for r in rows if r['setting'] == setting]):.2f} dB", flush=True)
    originals = {p.stem: (Image.open(p).convert("RGB"), np.asarray(Image.open(p).convert("RGB"))) for p in files}
    for name, (fmt, qualities, kw) in pillow_codecs().items():
        if name not in ("jpeg", "webp", "avif"):
            continue
        for q in qualities:
            for stem, (img, ref) in originals.items():
                rows.append({**run_pillow(name, fmt, q, kw, img, ref), "image": stem})
        print(f"{name}: done", flush=True)
    stem = "dictco_rd" if args.runs else "dictco_rd_shipped"
    _write_csv(rows, f"{stem}.csv")
    lines = _summary(rows, [p.stem for p in files])
    (RESULTS / f"{stem}_summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    _plot_rd(rows, [p.stem for p in files], RESULTS / f"{stem}.png")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _summary(rows: list[dict], images: list[str]) -> list[str]:
    """PSNR at 0.25 / 0.5 / 1.0 bpp, BD-rates of DCAE against each peer, DCAE against JPEG point by point."""
    from rd import at_rate, bd_rate, mean_curve

    lines = ["| codec | PSNR @0.25 | @0.5 | @1.0 | encode median | decode median |", "|---|---|---|---|---|---|"]
    for c in ("dcae", "jpeg", "webp", "avif"):
        # A mean at a rate only where every image's curve reaches it (else "nan"): no partial means.
        vals = [np.mean([at_rate(rows, c, im, b, "psnr") for im in images]) for b in (0.25, 0.5, 1.0)]
        sel = [r for r in rows if r["codec"] == c]
        enc = np.median([float(r["encode_s"]) for r in sel]) * 1000
        dec = np.median([float(r["decode_s"]) for r in sel]) * 1000
        lines.append(f"| {c} | " + " | ".join(f"{v:.2f}" for v in vals) + f" | {enc:.1f} ms | {dec:.1f} ms |")
    dr, dp, dm = mean_curve(rows, "dcae", images)
    lines.append("")
    for peer in ("jpeg", "webp", "avif"):
        pr, pp, pm = mean_curve(rows, peer, images)
        keep = (pr >= dr.min() * 0.5) & (pr <= dr.max() * 2)
        if dr.size >= 4 and keep.sum() >= 4:
            lines.append(f"BD-rate of DCAE against {peer.upper()}: {bd_rate(pr[keep], pp[keep], dr, dp):+.1f} % "
                         f"(PSNR), {bd_rate(pr[keep], pm[keep], dr, dm):+.1f} % (MS-SSIM)")
    lines += ["", "| DCAE model | bpp (file) | bpp (likelihoods) | PSNR | JPEG at that bpp | WebP at that bpp | "
              "images where DCAE ≥ JPEG | decode = encoder's, repeatable |", "|---|---|---|---|---|---|---|---|"]
    for setting in sorted({r["setting"] for r in rows if r["codec"] == "dcae"}):
        sel = [r for r in rows if r["codec"] == "dcae" and r["setting"] == setting]
        jpeg = [at_rate(rows, "jpeg", r["image"], r["bpp"], "psnr") for r in sel]
        webp = [at_rate(rows, "webp", r["image"], r["bpp"], "psnr") for r in sel]
        wins = sum(r["psnr"] >= j for r, j in zip(sel, jpeg) if not math.isnan(j))
        exact = sum(r["decode_matches_encoder"] and r["decode_repeatable"] for r in sel)
        lines.append(f"| {setting} | {np.mean([r['bpp'] for r in sel]):.4f} | "
                     f"{np.mean([r['bpp_est'] for r in sel]):.4f} | {np.mean([r['psnr'] for r in sel]):.2f} | "
                     f"{np.nanmean(jpeg):.2f} | {np.nanmean(webp):.2f} | "
                     f"{wins} / {sum(not math.isnan(j) for j in jpeg)} | {exact} / {len(sel)} |")
    return lines


def _plot_rd(rows: list[dict], images: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from rd import mean_curve

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for c, style, label in (("dcae", "o-", "DCAE dcae-small (shipped)"), ("jpeg", "s--", "JPEG"),
                            ("webp", "^--", "WebP"), ("avif", "v--", "AVIF")):
        r, p, m = mean_curve(rows, c, images)
        keep = r <= 1.6
        axes[0].plot(r[keep], p[keep], style, label=label, ms=4)
        axes[1].plot(r[keep], m[keep], style, label=label, ms=4)
    lgi = _lgi_curve()
    if lgi is not None:
        axes[0].plot(*lgi, "D-", color="C5", label=f"LGI (Gaussians, {LGI_CURVE})", ms=4)
    axes[0].set_ylabel("PSNR-RGB (dB)")
    axes[1].set_ylabel("MS-SSIM")
    for ax in axes:
        ax.set_xlabel("bits per pixel (file size)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"Kodak ({len(images)} images), mean over images per setting")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"wrote {path.relative_to(ROOT)}")


def cmd_plot(args) -> None:
    path = RESULTS / args.csv
    with open(path) as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k in ("bpp", "psnr", "ms_ssim"):
            r[k] = float(r[k]) if r[k] not in ("", None) else math.nan
    images = sorted({r["image"] for r in rows})
    _plot_rd(rows, images, path.with_suffix(".png"))


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
    p = sub.add_parser("rd", help="the shipped models (or --runs checkpoints) on Kodak, peers in the same run")
    p.add_argument("--runs", help="evaluate RUNS/*/last.pt instead of the shipped weights")
    p.add_argument("--kodak", type=int, default=24, help="first N Kodak images")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_rd)
    p = sub.add_parser("plot", help="redraw the figure of an rd run from its CSV")
    p.add_argument("--csv", default="dictco_rd_shipped.csv", help="a CSV in benchmarks/results")
    p.set_defaults(func=cmd_plot)
    args = parser.parse_args(argv)
    if not KODAK.is_dir():
        print(f"data not found: {KODAK}", file=sys.stderr)
        return 1
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
