"""The restoration networks against their goals (issue 42; docs/restore.md): LGI and JPEG, restored or not,
with WebP and AVIF at the same sizes, on Kodak and CLIC.

    flock /tmp/bench.lock python benchmarks/bench_restore.py run --lgi DIR [--clic-lgi DIR] [--models M...]
    python benchmarks/bench_restore.py plot

``run``: for every Kodak image and rate (0.25 / 0.5 / 1 bpp), the encoder's file ``*kodimNN_<rate>.lgi`` from
``--lgi`` (``bench_encoder.py run --keep DIR``), decoded and restored; JPEG at the largest quality whose file
is not larger than LGI's, decoded and restored; WebP and AVIF at the same size (peers, not restored). CLIC:
JPEG at 0.25 / 0.5 / 1 bpp on all 7 photos, restored; LGI where ``--clic-lgi`` holds a file
(``*<photo>_<rate>.lgi``). PSNR and MS-SSIM (8-bit RGB), the restore's seconds. ``--models name=ckpt``
also evaluates training checkpoints (``runs/restore/<source>/model.pt`` or a snapshot) on Kodak, for the
ablation. Writes results/restore.csv; ``plot`` draws results/restore_kodak.png (the RD curves).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, cpu_name, write_csv  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KODAK = ROOT.parent / "shared" / "data" / "kodak"
CLIC = ROOT.parent / "shared" / "data" / "clic2025"
RATES = (0.25, 0.5, 1.0)
OUT = RESULTS / "restore.csv"


def _load(path: Path):
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


def _net(spec: str | None, source: str):
    """A shipped model (spec None) or a training checkpoint."""
    import torch

    from lgi_dictco.restore import load_restorer
    from lgi_dictco.restore.model import RestoreConfig, RestoreNet

    if spec is None:
        return load_restorer(source)[0]
    ck = torch.load(spec, map_location="cpu", weights_only=True)
    net = RestoreNet(RestoreConfig(**ck["config"]))
    net.load_state_dict(ck["state_dict"])
    return net.eval()


def _restored(net, pixels, source: str, level_value: float):
    """``pixels`` restored by ``net`` (given the level of ``level_value`` if it is conditioned), and the seconds."""
    import torch

    from lgi_dictco.pixels import to_uint8
    from lgi_dictco.restore import restore
    from lgi_dictco.restore.model import level_of

    level = level_of(source, level_value) if net.config.conditioned else None
    t0 = time.perf_counter()
    out = to_uint8(restore(net, torch.from_numpy(pixels).permute(2, 0, 1).float() / 255, level=level))
    return out, time.perf_counter() - t0


def cmd_run(args) -> None:
    import torch

    import lgi
    from lgi.peers import decode_u8, peer_at_most, rgb_metrics

    torch.set_num_threads(args.threads)
    # The shipped networks, or (--lgi-model / --jpeg-model) training checkpoints in their place.
    nets = {"lgi": _net(args.lgi_model, "lgi"), "jpeg": _net(args.jpeg_model, "jpeg")}
    extra = {}
    for spec in args.models or []:  # name=checkpoint: evaluated on the codecs its name says (lgi, jpeg, both)
        name, path = spec.split("=", 1)
        sources = [c for c in ("lgi", "jpeg") if c in name or "both" in name]
        extra[name] = (_net(path, sources[0]), sources)
    rows = []

    def row(dataset, image, rate, codec, data_bytes, pixels, ref, restored_by=None, seconds=None, net_name=""):
        p, m = rgb_metrics(pixels, ref)
        h, w = ref.shape[:2]
        rows.append({"dataset": dataset, "image": image, "rate": rate, "codec": codec, "model": net_name,
                     "bytes": data_bytes, "bpp": round(8 * data_bytes / (w * h), 4), "psnr": round(p, 3),
                     "ms_ssim": round(m, 5), "restore_s": "" if seconds is None else round(seconds, 3),
                     "megapixels": round(w * h / 1e6, 3)})
        print(f"{dataset} {image} {rate} {codec}{'+' + net_name if net_name else ''}: {p:.2f} dB"
              + ("" if seconds is None else f" ({seconds:.2f} s)"), flush=True)

    def level_value(codec, data, ref, quality):
        """What a decoder knows of the input's level: the LGI file's bits per pixel, the JPEG quality."""
        return 8 * len(data) / (ref.shape[0] * ref.shape[1]) if codec == "lgi" else quality

    def both(dataset, image, rate, codec, data, decoded, ref, quality=None):
        row(dataset, image, rate, codec, len(data), decoded, ref)
        out, s = _restored(nets[codec], decoded, codec, level_value(codec, data, ref, quality))
        row(dataset, image, rate, f"{codec}+restore", len(data), out, ref, seconds=s)

    for path in sorted(KODAK.glob("*.png"))[:args.limit]:
        ref = _load(path)
        for rate in RATES:
            lgi_file = next(iter(sorted(Path(args.lgi).glob(f"*{path.stem}_{rate:g}.lgi"))), None)
            if lgi_file is None:
                continue
            data = lgi_file.read_bytes()
            decoded = lgi.decode(data)
            both("kodak", path.stem, rate, "lgi", data, decoded, ref)
            jpeg, quality = peer_at_most(ref, len(data), "jpeg")
            jpeg_px = decode_u8(jpeg)
            both("kodak", path.stem, rate, "jpeg", jpeg, jpeg_px, ref, quality)
            for peer in ("webp", "avif"):
                pdata, _ = peer_at_most(ref, len(data), peer)
                row("kodak", path.stem, rate, peer, len(pdata), decode_u8(pdata), ref)
            for name, (net, sources) in extra.items():
                for source, px, coded in (("lgi", decoded, data), ("jpeg", jpeg_px, jpeg)):
                    if source in sources:
                        out, s = _restored(net, px, source, level_value(source, coded, ref, quality))
                        row("kodak-ablation", path.stem, rate, f"{source}+restore", len(coded), out, ref, seconds=s,
                            net_name=name)
    if not args.no_clic:
        for path in sorted(CLIC.glob("*.png")):
            ref = _load(path)
            h, w = ref.shape[:2]
            for rate in RATES:
                jpeg, quality = peer_at_most(ref, int(rate * w * h / 8), "jpeg")
                both("clic", path.stem[:8], rate, "jpeg", jpeg, decode_u8(jpeg), ref, quality)
                lgi_file = next(iter(sorted(Path(args.clic_lgi).glob(f"*{path.stem}_{rate:g}.lgi"))), None) \
                    if args.clic_lgi else None
                if lgi_file is not None:
                    data = lgi_file.read_bytes()
                    both("clic", path.stem[:8], rate, "lgi", data, lgi.decode(data), ref)
    for r in rows:
        r["cpu"] = cpu_name()
        r["threads"] = args.threads
    write_csv(Path(args.out), rows)
    summary(rows)


def summary(rows) -> None:
    import numpy as np

    def mean(dataset, codec, rate, key="psnr", model=""):
        v = [float(r[key]) for r in rows if r["dataset"] == dataset and r["codec"] == codec
             and float(r["rate"]) == rate and r.get("model", "") == model and r[key] != ""]
        return (float(np.mean(v)), len(v)) if v else (float("nan"), 0)

    for dataset in ("kodak", "clic"):
        for rate in RATES:
            parts = []
            for codec in ("lgi", "lgi+restore", "jpeg", "jpeg+restore", "webp", "avif"):
                p, n = mean(dataset, codec, rate)
                if n:
                    parts.append(f"{codec} {p:.2f}")
            if parts:
                print(f"{dataset} {rate:g} bpp: " + ", ".join(parts))
        for codec in ("lgi", "jpeg"):
            for rate in RATES:
                base = {(r["image"]): float(r["psnr"]) for r in rows if r["dataset"] == dataset and r["codec"] == codec
                        and float(r["rate"]) == rate}
                rest = {(r["image"]): float(r["psnr"]) for r in rows if r["dataset"] == dataset
                        and r["codec"] == f"{codec}+restore" and float(r["rate"]) == rate and not r.get("model")}
                common = sorted(set(base) & set(rest))
                if common:
                    gains = [rest[i] - base[i] for i in common]
                    print(f"  {dataset} {codec} {rate:g}: gain {np.mean(gains):+.3f} dB mean, min {min(gains):+.3f}, "
                          f"{sum(g < 0 for g in gains)} of {len(gains)} worse")
    for name in sorted({r["model"] for r in rows if r.get("model")}):
        for codec in ("lgi", "jpeg"):
            for rate in RATES:
                base = {r["image"]: float(r["psnr"]) for r in rows if r["dataset"] == "kodak" and r["codec"] == codec
                        and float(r["rate"]) == rate}
                mine = {r["image"]: float(r["psnr"]) for r in rows if r.get("model") == name
                        and r["codec"] == f"{codec}+restore" and float(r["rate"]) == rate}
                common = sorted(set(base) & set(mine))
                if common:
                    print(f"  ablation {name} on {codec} {rate:g}: gain "
                          f"{np.mean([mine[i] - base[i] for i in common]):+.3f} dB over {len(common)} images")
    secs = [(float(r["restore_s"]), float(r["megapixels"])) for r in rows if r["restore_s"] != "" and not r.get("model")]
    if secs:
        k = [s for s, mp in secs if 0.3 < mp < 0.5]
        print(f"restore time: Kodak median {np.median(k):.2f} s per image; "
              f"{np.median([s / mp for s, mp in secs]):.2f} s per megapixel (median)")


def cmd_plot(args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = list(csv.DictReader(open(args.out)))
    summary(rows)
    fig, ax = plt.subplots(figsize=(7, 5))
    styles = {"lgi": ("o-", "C0"), "lgi+restore": ("o--", "C0"), "jpeg": ("s-", "C1"), "jpeg+restore": ("s--", "C1"),
              "webp": ("^-", "C2"), "avif": ("v-", "C3")}
    for codec, (style, color) in styles.items():
        pts = []
        for rate in RATES:
            sel = [r for r in rows if r["dataset"] == "kodak" and r["codec"] == codec and float(r["rate"]) == rate
                   and not r.get("model")]
            if sel:
                pts.append((np.mean([float(r["bpp"]) for r in sel]), np.mean([float(r["psnr"]) for r in sel])))
        if pts:
            ax.plot(*zip(*pts), style, color=color, label=codec.replace("lgi", "LGI").replace("jpeg", "JPEG")
                    .replace("webp", "WebP").replace("avif", "AVIF").replace("+restore", " + restore"))
    ax.set_xlabel("bits per pixel (mean over the 24 Kodak images)")
    ax.set_ylabel("PSNR (dB, mean)")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("Restoration on Kodak: each codec at LGI's file sizes")
    fig.tight_layout()
    fig.savefig(Path(args.out).with_name("restore_kodak.png"), dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(required=True)
    p = sub.add_parser("run")
    p.add_argument("--lgi", required=True, help="folder of the encoder's Kodak .lgi files")
    p.add_argument("--clic-lgi", help="folder of the encoder's CLIC .lgi files")
    p.add_argument("--models", nargs="*", help="name=checkpoint: more LGI models for the ablation (Kodak)")
    p.add_argument("--lgi-model", help="a checkpoint to use as the LGI network (default: the shipped one)")
    p.add_argument("--jpeg-model", help="a checkpoint to use as the JPEG network (default: the shipped one)")
    p.add_argument("--limit", type=int, help="only the first N Kodak images")
    p.add_argument("--no-clic", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(OUT))
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("plot")
    p.add_argument("--out", default=str(OUT))
    p.set_defaults(func=cmd_plot)
    args = ap.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
