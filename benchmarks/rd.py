"""Rate-distortion benchmark: LGI against JPEG, WebP, AVIF and JPEG XL (Pillow) on Kodak, in one run.

    python benchmarks/rd.py --subset 6                  # quick: 6 images
    python benchmarks/rd.py                             # all 24 Kodak images
    python benchmarks/rd.py --rates 0.25,0.5,1.0 --device cuda
    python benchmarks/rd.py --dataset clic --rates 0.25,0.5,1.0 --out benchmarks/results/rd_clic.csv
    python benchmarks/rd.py --out benchmarks/results/rd_kodak_v2.csv \
        --reference benchmarks/results/rd_kodak.csv:lgi=lgi-v1   # overlay an earlier LGI run

Writes benchmarks/results/rd_kodak.csv (one row per codec, image and setting; rows already present
are reused, so an interrupted run resumes), rd_kodak_summary.csv and .md (mean PSNR / MS-SSIM at
0.25 / 0.5 / 1.0 bpp, BD-rate of LGI against JPEG and WebP, median encode/decode times) and
rd_kodak.png (PSNR and MS-SSIM against bpp).

Honesty rules (../shared/CODEC_NOTES.md): bpp = file bytes × 8 / pixels, header included; PSNR on
8-bit RGB of the decoded PNG; every codec on the same images in the same run.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
KODAK = ROOT.parent / "shared" / "data" / "kodak"
DATASETS = {"kodak": (KODAK, "kodim*.png"), "clic": (ROOT.parent / "shared" / "data" / "clic2025", "*.png")}
RESULTS = ROOT / "benchmarks" / "results"
FIELDS = ["codec", "image", "setting", "bytes", "bpp", "psnr", "ms_ssim", "encode_s", "decode_s", "gaussians",
          "device"]


def metrics(decoded: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    from lgi.peers import rgb_metrics  # the metrics `lgi batch eval` and `lgi demo` report

    return rgb_metrics(decoded, ref)


def pillow_codecs() -> dict[str, tuple[str, list[int], dict]]:
    from lgi.peers import PEERS  # the same codecs and options as `lgi batch eval`'s peers

    sweeps = {"jpeg": list(range(5, 96, 5)), "webp": list(range(0, 101, 5)), "avif": list(range(0, 101, 5))}
    codecs = {name: (PEERS[name].format, qualities, PEERS[name].options) for name, qualities in sweeps.items()}
    try:
        import pillow_jxl  # noqa: F401 - registers the JXL plugin

        codecs["jxl"] = ("JXL", list(range(5, 96, 5)), {"effort": 7})  # 100 = distance 0: lossless only
    except ImportError:
        print("pillow-jxl-plugin not installed: JPEG XL skipped", file=sys.stderr)
    return codecs


def run_pillow(name: str, fmt: str, quality: int, kw: dict, img: Image.Image, ref: np.ndarray) -> dict:
    enc_times, dec_times = [], []
    for _ in range(3):
        buf = io.BytesIO()
        t0 = time.perf_counter()
        img.save(buf, format=fmt, quality=quality, **kw)
        enc_times.append(time.perf_counter() - t0)
        data = buf.getvalue()
        t0 = time.perf_counter()
        dec = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        dec_times.append(time.perf_counter() - t0)
    psnr, msssim = metrics(dec, ref)
    h, w = ref.shape[:2]
    return {"codec": name, "setting": quality, "bytes": len(data), "bpp": len(data) * 8 / (h * w), "psnr": psnr,
            "ms_ssim": msssim, "encode_s": float(np.median(enc_times)), "decode_s": float(np.median(dec_times)),
            "gaussians": "", "device": "cpu"}


def run_lgi(bpp: float, target: torch.Tensor, ref: np.ndarray, device: str, steps: int | None,
            effort: str = "default", lam: float | None = None, step_scale: float = 1.0, codec: str = "lgi",
            blend: str | None = None, second_pass: float | None = None,
            coarse_fraction: float | None = None, second_pass_refit: int | None = None,
            tile_above: int | None = None, second_pass_below: float | None = None,
            topk: int | None = None, codec_settings: dict | None = None, fit_settings: dict | None = None,
            encode_options: dict | None = None) -> dict:
    from lgi.decoding import decode, to_uint8
    from lgi_train.compress.encoder import EncodeOptions, encode_image, target_bytes_for, with_effort

    h, w = ref.shape[:2]
    opts = with_effort(EncodeOptions(target_bytes=target_bytes_for(bpp, None, h, w)), effort)
    opts.fit = opts.fit.replace(device=device)
    if blend is not None:
        opts.fit = opts.fit.replace(render_mode=blend)
    if topk is not None:
        opts.fit = opts.fit.replace(topk=topk)
        opts.wide_topk_from = None  # exactly the K asked for, whatever the count
    if steps is not None:
        opts.fit_steps = steps
        opts.fit_steps_at_1bpp = 1.0  # exactly the steps asked for
    if codec_settings:
        opts.codec = dataclasses.replace(opts.codec, **codec_settings)
    if fit_settings:
        opts.fit = opts.fit.replace(**fit_settings)
    if encode_options:
        opts = dataclasses.replace(opts, **encode_options)
    if second_pass is not None:
        opts.second_pass_fraction = second_pass or None
    if coarse_fraction is not None:
        opts.fit = opts.fit.replace(coarse_fraction=coarse_fraction)
    if second_pass_refit is not None:
        opts.second_pass_refit_steps = second_pass_refit
    if tile_above is not None:
        opts.tile_above = tile_above
    if second_pass_below is not None:
        opts.second_pass_below = second_pass_below
    c = opts.codec
    opts.rate_db = lam
    opts.codec = dataclasses.replace(c, color_step=c.color_step * step_scale,
                                     shape_step=tuple(v * step_scale for v in c.shape_step))
    t0 = time.perf_counter()
    result = encode_image(target.to(device), opts)
    encode_s = time.perf_counter() - t0
    dec_times = []
    for _ in range(5):
        t0 = time.perf_counter()
        out = decode(result.data, device=device)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        dec_times.append(time.perf_counter() - t0)
    dec = to_uint8(out.image)
    psnr, msssim = metrics(dec, ref)
    return {"codec": codec, "setting": bpp, "bytes": len(result.data), "bpp": len(result.data) * 8 / (h * w),
            "psnr": psnr, "ms_ssim": msssim, "encode_s": encode_s, "decode_s": float(np.median(dec_times)),
            "gaussians": result.num_gaussians, "device": device, "data": result.data,
            "stages": {k: round(v, 1) for k, v in result.stage_seconds.items()}, "rate_log": result.rate_log}


def bd_rate(r1: np.ndarray, d1: np.ndarray, r2: np.ndarray, d2: np.ndarray) -> float:
    """Bjøntegaard delta rate (%) of curve 2 against curve 1: cubic fits of log-rate over quality,
    integrated over the overlapping quality range. Negative: curve 2 needs fewer bits."""
    lr1, lr2 = np.log(r1), np.log(r2)
    p1, p2 = np.polyfit(d1, lr1, 3), np.polyfit(d2, lr2, 3)
    lo, hi = max(d1.min(), d2.min()), min(d1.max(), d2.max())
    if hi <= lo:
        return float("nan")
    i1 = np.polyval(np.polyint(p1), hi) - np.polyval(np.polyint(p1), lo)
    i2 = np.polyval(np.polyint(p2), hi) - np.polyval(np.polyint(p2), lo)
    return float((math.exp((i2 - i1) / (hi - lo)) - 1) * 100)


def _bd_in_range(pr: np.ndarray, pd: np.ndarray, lr: np.ndarray, ld: np.ndarray) -> float | None:
    """The BD-rate of curve (lr, ld) against the peer's (pr, pd), on the peer's points within half and
    twice LGI's rate range; None where fewer than 4 of them are left."""
    keep = (pr >= lr.min() * 0.5) & (pr <= lr.max() * 2)
    return bd_rate(pr[keep], pd[keep], lr, ld) if keep.sum() >= 4 else None


def _per_image_bd(rows: list[dict], lgi: str, peer: str, images: list[str]) -> str:
    """"; per image, averaged: X % (PSNR) over n images": the mean of the images' own BD-rates, which
    can differ from the BD-rate of the mean curves (averaging PSNR over images mixes their curves)."""
    out = []
    for im in images:
        pts = {c: sorted((float(r["bpp"]), float(r["psnr"])) for r in rows if r["codec"] == c and r["image"] == im)
               for c in (lgi, peer)}
        if len(pts[lgi]) < 4:
            continue
        lr, lp = (np.array(v) for v in zip(*pts[lgi]))
        pr, pp = (np.array(v) for v in zip(*pts[peer])) if pts[peer] else (np.zeros(0), np.zeros(0))
        v = _bd_in_range(pr, pp, lr, lp)
        if v is not None and not math.isnan(v):
            out.append(v)
    return f"; per image, averaged: {np.mean(out):+.1f} % (PSNR) over {len(out)} images" if out else ""


def mean_curve(rows: list[dict], codec: str, images: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Average (bpp, PSNR, MS-SSIM) per setting over the images that have every setting."""
    by_setting: dict[str, list[dict]] = {}
    for r in rows:
        if r["codec"] == codec and r["image"] in images:
            by_setting.setdefault(str(r["setting"]), []).append(r)
    pts = [(np.mean([float(x["bpp"]) for x in v]), np.mean([float(x["psnr"]) for x in v]),
            np.mean([float(x["ms_ssim"]) for x in v])) for v in by_setting.values() if len(v) == len(images)]
    pts.sort()
    arr = np.array(pts) if pts else np.zeros((0, 3))
    return arr[:, 0], arr[:, 1], arr[:, 2]


def at_rate(rows: list[dict], codec: str, image: str, bpp: float, key: str) -> float:
    pts = sorted((float(r["bpp"]), float(r[key])) for r in rows if r["codec"] == codec and r["image"] == image)
    if len(pts) < 2 or not pts[0][0] <= bpp <= pts[-1][0]:
        return float("nan")
    return float(np.interp(bpp, [p[0] for p in pts], [p[1] for p in pts]))


def lgi_codecs(rows: list[dict]) -> list[str]:
    """"lgi" (this run) first, then any overlaid LGI runs ("lgi-v1", ...)."""
    names = sorted({r["codec"] for r in rows if r["codec"].startswith("lgi")})
    return sorted(names, key=lambda c: (c != "lgi", c))


def against_jpeg(rows: list[dict], images: list[str]) -> list[str]:
    """Per LGI target rate: mean LGI bpp and PSNR, and JPEG's (and any overlaid LGI run's) PSNR at each
    image's LGI bpp, interpolated on that codec's own curve of the image."""
    others = ["jpeg", *[c for c in lgi_codecs(rows) if c != "lgi"]]
    lines = ["| LGI target bpp | LGI bpp | LGI PSNR | " + " | ".join(f"{c.upper()} at that bpp" for c in others)
             + " | images where LGI ≥ JPEG |", "|---" * (4 + len(others)) + "|"]
    settings = sorted({float(r["setting"]) for r in rows if r["codec"] == "lgi" and r["image"] in images})
    for b in settings:
        sel = [r for r in rows if r["codec"] == "lgi" and float(r["setting"]) == b and r["image"] in images]
        cells, wins = [], 0
        for c in others:
            vals = [at_rate(rows, c, r["image"], float(r["bpp"]), "psnr") for r in sel]
            ok = [v for v in vals if not math.isnan(v)]
            mine = [float(r["psnr"]) for r, v in zip(sel, vals) if not math.isnan(v)]
            if c == "jpeg":
                wins = sum(1 for m, v in zip(mine, ok) if m >= v)
                n_jpeg = len(ok)
            cells.append(f"{np.mean(ok):.2f} (LGI {np.mean(mine):.2f} on these {len(ok)})" if ok else "— (out of range)")
        lines.append(f"| {b:g} | {np.mean([float(r['bpp']) for r in sel]):.3f} | "
                     f"{np.mean([float(r['psnr']) for r in sel]):.2f} | " + " | ".join(cells) + f" | {wins} / {n_jpeg} |")
    return lines


def summarize(rows: list[dict], images: list[str], out: Path) -> list[str]:
    codecs = [c for c in (*lgi_codecs(rows), "jpeg", "webp", "avif", "jxl") if any(r["codec"] == c for r in rows)]
    lines = ["| codec | PSNR @0.25 | @0.5 | @1.0 | MS-SSIM @0.5 | encode (median, 0.3–0.7 bpp) | decode (same) |",
             "|---|---|---|---|---|---|---|"]
    def mean_cell(c: str, b: float, key: str, digits: int) -> tuple[float, str]:
        """The mean over the images whose curve reaches rate b, and its cell: "(n/N)" after it when
        some images' curves do not reach b (their mean is not the others')."""
        vals = [v for v in (at_rate(rows, c, im, b, key) for im in images) if not math.isnan(v)]
        mean = float(np.mean(vals)) if vals else float("nan")
        return mean, f"{mean:.{digits}f}" + (f" ({len(vals)}/{len(images)})" if 0 < len(vals) < len(images) else "")

    summary = []
    for c in codecs:
        cells = {b: mean_cell(c, b, "psnr", 2) for b in (0.25, 0.5, 1.0)}
        ms, ms_cell = mean_cell(c, 0.5, "ms_ssim", 4)
        near = [r for r in rows if r["codec"] == c and r["image"] in images and 0.3 <= float(r["bpp"]) <= 0.7]
        enc = np.median([float(r["encode_s"]) for r in near]) if near else float("nan")
        dec = np.median([float(r["decode_s"]) for r in near]) if near else float("nan")
        summary.append({"codec": c, "psnr_0.25": cells[0.25][0], "psnr_0.5": cells[0.5][0], "psnr_1.0": cells[1.0][0],
                        "ms_ssim_0.5": ms, "encode_s": enc, "decode_s": dec})
        lines.append(f"| {c} | {cells[0.25][1]} | {cells[0.5][1]} | {cells[1.0][1]} | {ms_cell} | "
                     f"{enc * 1000:.0f} ms | {dec * 1000:.1f} ms |")
    for lgi in lgi_codecs(rows):
        lr, lp, lm = mean_curve(rows, lgi, images)
        for peer in ("jpeg", "webp", "avif"):
            if peer in codecs and lr.size >= 4:
                pr, pp, pm = mean_curve(rows, peer, images)
                bd_psnr = _bd_in_range(pr, pp, lr, lp)
                if bd_psnr is not None:
                    lines.append(f"\nBD-rate of {lgi.upper()} against {peer.upper()} (PSNR): {bd_psnr:+.1f} %; "
                                 f"(MS-SSIM): {_bd_in_range(pr, pm, lr, lm):+.1f} %"
                                 f"{_per_image_bd(rows, lgi, peer, images)}")
    if "lgi" in codecs and "jpeg" in codecs:
        lines += ["", *against_jpeg(rows, images)]
    with open(out.with_name(out.stem + "_summary.csv"), "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(summary[0]))
        wr.writeheader()
        wr.writerows(summary)
    return lines


def plot(rows: list[dict], images: list[str], path: Path, title: str = "Kodak") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    styles = [(c, "o-" if c == "lgi" else "o:") for c in lgi_codecs(rows)]
    for c, style in (*styles, ("jpeg", "s--"), ("webp", "^--"), ("avif", "v--"), ("jxl", "d--")):
        r, p, m = mean_curve(rows, c, images)
        if r.size:
            keep = r <= 2.0
            axes[0].plot(r[keep], p[keep], style, label=c.upper(), ms=4)
            axes[1].plot(r[keep], m[keep], style, label=c.upper(), ms=4)
    axes[0].set_ylabel("PSNR-RGB (dB)")
    axes[1].set_ylabel("MS-SSIM")
    for ax in axes:
        ax.set_xlabel("bits per pixel")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{title} ({len(images)} images), mean over images per setting")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _settings(pairs: list[str], cls, flag: str) -> dict:
    """``["name=value", ...]`` → fields of the dataclass ``cls`` (numbers; each name checked against it)."""
    fields = {f.name for f in dataclasses.fields(cls)}
    out = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if name not in fields or not value:
            raise SystemExit(f"{flag} {pair!r}: expected NAME=VALUE with NAME one of {sorted(fields)}")
        out[name] = int(value) if value.lstrip("-").isdigit() else float(value)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--subset", type=int, help="first N Kodak images")
    ap.add_argument("--images", help="comma-separated stems, e.g. kodim01,kodim23")
    ap.add_argument("--rates", default="0.125,0.25,0.5,1.0,1.5", help="LGI target bpps")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, help="LGI fitting steps (default: the effort's)")
    ap.add_argument("--codec-setting", action="append", default=[], metavar="NAME=VALUE",
                    help="set a numeric field of LGI's CodecSettings after the effort's (research; "
                         "repeatable), e.g. finetune_lr_scale=1.0 or finetune_steps=300")
    ap.add_argument("--fit-setting", action="append", default=[], metavar="NAME=VALUE",
                    help="set a numeric field of LGI's FitConfig (research; repeatable), e.g. lr_color=0.01")
    ap.add_argument("--encode-option", action="append", default=[], metavar="NAME=VALUE",
                    help="set a numeric field of LGI's EncodeOptions (research; repeatable), e.g. overshoot=1.1")
    ap.add_argument("--effort", default="default", choices=["fast", "default", "max"])
    ap.add_argument("--dataset", default="kodak", choices=sorted(DATASETS))
    ap.add_argument("--skip-lgi", action="store_true")
    ap.add_argument("--lambda", dest="lam", type=float, help="LGI's rate term in dB per bpp (default: the encoder's, priced by the target)")
    ap.add_argument("--step-scale", type=float, default=1.0, help="multiply LGI's default value steps (research)")
    ap.add_argument("--blend", choices=["sum", "topk"], help="LGI's blend mode (default: the encoder's)")
    ap.add_argument("--topk", type=int, metavar="K", help="LGI's top-K blend width at every count (default: the encoder's, "
                    "wider for large fits)")
    ap.add_argument("--coarse-fraction", type=float,
                    help="share of LGI's fit steps at half size (coarse-to-fine; default: the encoder's)")
    ap.add_argument("--second-pass", type=float, metavar="FRACTION",
                    help="LGI's warm second pass length as a fraction of the fine-tuning (0: the cold pass of "
                         "before, a re-fit and the whole fine-tuning; default: the encoder's)")
    ap.add_argument("--second-pass-refit", type=int, metavar="STEPS",
                    help="float re-fit steps of the warm second pass's grown set before its fine-tuning "
                         "(0: none, the warm pass of before; default: the encoder's)")
    ap.add_argument("--second-pass-below", type=float, metavar="SHARE",
                    help="run LGI's second pass when the first pass's file fills less than this share of the "
                         "target (default: the encoder's, 0.985)")
    ap.add_argument("--tile-above", type=int, metavar="PIXELS",
                    help="fit images above this many pixels in tiles (0: always; default: the encoder's, 2^22)")
    ap.add_argument("--codec-name", default="lgi", help="name of LGI's rows in the CSV (to compare variants)")
    ap.add_argument("--skip-peers", action="store_true", help="only LGI (peers already in --out)")
    ap.add_argument("--keep-files", type=Path, help="also write each LGI file into this folder (CODEC_IMAGE_BPP.lgi)")
    ap.add_argument("--out", type=Path, default=RESULTS / "rd_kodak.csv")
    ap.add_argument("--reference", action="append", default=[],
                    help="CSV:old=new — add the rows of codec `old` from an earlier run's CSV as codec `new` "
                         "(summaries and plot only; e.g. results/rd_kodak.csv:lgi=lgi-v1)")
    args = ap.parse_args()
    from lgi_train.compress.codec import CodecSettings
    from lgi_train.compress.encoder import EncodeOptions
    from lgi_train.config import FitConfig

    codec_settings = _settings(args.codec_setting, CodecSettings, "--codec-setting")
    fit_settings = _settings(args.fit_setting, FitConfig, "--fit-setting")
    encode_options = _settings(args.encode_option, EncodeOptions, "--encode-option")
    from _common import image_paths

    paths = image_paths(*DATASETS[args.dataset], args.images, args.subset)
    images = [p.stem for p in paths]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    if args.out.exists():
        with open(args.out) as f:
            rows = list(csv.DictReader(f))
    done = {(r["codec"], r["image"], str(r["setting"])) for r in rows}
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} "
          f"threads, device {args.device}; {len(images)} images", flush=True)
    new = open(args.out, "a", newline="")
    writer = csv.DictWriter(new, fieldnames=FIELDS)
    if not rows:
        writer.writeheader()
    codecs = pillow_codecs()
    for path in paths:
        img = Image.open(path).convert("RGB")
        ref = np.asarray(img)
        target = torch.from_numpy(ref.astype(np.float32) / 255).permute(2, 0, 1).contiguous()
        jobs = [] if args.skip_peers else [(name, q) for name, (_, qs, _) in codecs.items() for q in qs]
        if not args.skip_lgi:
            jobs += [(args.codec_name, float(b)) for b in args.rates.split(",")]
        for name, setting in jobs:
            if (name, path.stem, str(setting)) in done:
                continue
            if name == args.codec_name:
                row = run_lgi(setting, target, ref, args.device, args.steps, args.effort, args.lam,
                              args.step_scale, args.codec_name, args.blend, args.second_pass,
                              args.coarse_fraction, args.second_pass_refit, args.tile_above,
                              args.second_pass_below, args.topk, codec_settings, fit_settings, encode_options)
                data, stages, rate_log = row.pop("data"), row.pop("stages"), row.pop("rate_log")
                if args.keep_files:
                    args.keep_files.mkdir(parents=True, exist_ok=True)
                    (args.keep_files / f"{name}_{path.stem}_{setting}.lgi").write_bytes(data)
                print(f"{path.stem} {name} {setting}: {row['bpp']:.3f} bpp {row['psnr']:.2f} dB "
                      f"{row['encode_s']:.1f} s enc {stages}, {row['decode_s'] * 1000:.1f} ms dec, "
                      f"N={row['gaussians']}, {rate_log.get('passes')} pass(es)"
                      f"{' (' + rate_log['second_pass'] + ')' if 'second_pass' in rate_log else ''}", flush=True)
            else:
                fmt, _, kw = codecs[name]
                row = run_pillow(name, fmt, setting, kw, img, ref)
            row["image"] = path.stem
            writer.writerow(row)
            new.flush()
            rows.append({k: str(v) for k, v in row.items()})
    new.close()
    for ref_arg in args.reference:
        path, _, rename = ref_arg.rpartition(":")
        old, _, label = rename.partition("=")
        with open(path) as f:
            rows += [{**r, "codec": label} for r in csv.DictReader(f) if r["codec"] == old]
    title = {"kodak": "Kodak", "clic": "CLIC 2025"}[args.dataset]
    lines = summarize(rows, images, args.out)
    (args.out.with_name(args.out.stem + "_summary.md")).write_text(
        f"{title}, {len(images)} images: {', '.join(images)}\n\n" + "\n".join(lines) + "\n")
    plot(rows, images, args.out.with_suffix(".png"), title)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
