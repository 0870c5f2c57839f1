"""`lgi batch eval`'s outputs: the per-image CSV, the summary table, the RD plot."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

FIELDS = ["image", "codec", "quality", "bytes", "bpp", "psnr", "ms_ssim"]


def eval_rows(records: list[dict]) -> list[dict]:
    """One row per (image, codec) from the eval manifest records that succeeded."""
    return [{"image": rec["item"], **row} for rec in records if rec.get("status") == "ok"
            for row in rec["report"]["rows"]]


def _mean(values: list[float]) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return sum(values) / len(values) if values else float("nan")


def summarize(rows: list[dict]) -> list[dict]:
    """Per codec: images, mean bpp / PSNR / MS-SSIM, and on how many images LGI's PSNR ≥ the codec's."""
    codecs = list(dict.fromkeys(r["codec"] for r in rows))
    lgi = {r["image"]: r for r in rows if r["codec"] == "lgi"}
    out = []
    for codec in codecs:
        sel = [r for r in rows if r["codec"] == codec]
        entry = {"codec": codec, "images": len(sel), "bpp": _mean([r["bpp"] for r in sel]),
                 "psnr": _mean([r["psnr"] for r in sel]), "ms_ssim": _mean([r["ms_ssim"] for r in sel])}
        if codec != "lgi":
            entry["lgi_wins"] = sum(1 for r in sel if r["image"] in lgi and lgi[r["image"]]["psnr"] >= r["psnr"])
            # A peer file larger than LGI's (even its lowest quality did not fit) is no fair comparison.
            entry["over_size"] = sum(1 for r in sel if r["image"] in lgi and r["bytes"] > lgi[r["image"]]["bytes"])
        out.append(entry)
    return out


def table(summary: list[dict]) -> list[str]:
    """The summary as a Markdown table."""
    lines = ["| codec | images | mean bpp | mean PSNR (dB) | mean MS-SSIM | images where LGI PSNR ≥ it |",
             "|---|---|---|---|---|---|"]
    for s in summary:
        ms = "—" if math.isnan(s["ms_ssim"]) else f"{s['ms_ssim']:.4f}"
        wins = "" if s["codec"] == "lgi" else f"{s['lgi_wins']} / {s['images']}"
        if s.get("over_size"):
            wins += f" ({s['over_size']} larger than LGI: lowest quality)"
        lines.append(f"| {s['codec']} | {s['images']} | {s['bpp']:.4f} | {s['psnr']:.2f} | {ms} | {wins} |")
    return lines


def csv_bytes(rows: list[dict]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if r.get(k) is None else r[k]) for k in FIELDS})
    return buf.getvalue().encode()


def plot_png(rows: list[dict], title: str) -> bytes:
    """PSNR (and MS-SSIM where defined) against bpp: one point per image and codec, the mean per codec."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    has_ms = any(r["ms_ssim"] is not None for r in rows)
    fig, axes = plt.subplots(1, 2 if has_ms else 1, figsize=(12 if has_ms else 6.5, 4.5), squeeze=False)
    markers = {"lgi": "o", "jpeg": "s", "webp": "^", "avif": "v"}
    for col, key, label in ((0, "psnr", "PSNR-RGB (dB)"), (1, "ms_ssim", "MS-SSIM"))[: 2 if has_ms else 1]:
        ax = axes[0][col]
        for codec in dict.fromkeys(r["codec"] for r in rows):
            pts = [(r["bpp"], r[key]) for r in rows if r["codec"] == codec and r[key] is not None]
            if not pts:
                continue
            line = ax.scatter([p[0] for p in pts], [p[1] for p in pts], marker=markers.get(codec, "x"), s=14,
                              alpha=0.45)
            ax.scatter([_mean([p[0] for p in pts])], [_mean([p[1] for p in pts])], marker=markers.get(codec, "x"),
                       s=90, color=line.get_facecolor()[0], edgecolor="black", label=f"{codec.upper()} (mean)")
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def write_report(rows: list[dict], folder: Path, title: str) -> dict[str, Path]:
    """eval.csv, eval_summary.md and eval.png in ``folder`` (atomically); returns their paths."""
    from lgi_dictco.fileio import atomic_write_bytes

    paths = {"csv": folder / "eval.csv", "summary": folder / "eval_summary.md", "plot": folder / "eval.png"}
    atomic_write_bytes(paths["csv"], csv_bytes(rows))
    atomic_write_bytes(paths["summary"], (f"{title}\n\n" + "\n".join(table(summarize(rows))) + "\n").encode())
    atomic_write_bytes(paths["plot"], plot_png(rows, title))
    return paths
