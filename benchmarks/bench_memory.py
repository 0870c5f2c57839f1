"""Peak memory of each image command against the image's size (issue #14: any image, any size).

    python benchmarks/bench_memory.py                              # every command at 1, 4 and 8 MP
    python benchmarks/bench_memory.py --commands encode --megapixels 2,16

Every run is a fresh process whose memory is sampled (the sum of the resident sets of it and its
children, every 0.1 s); the peak is reported with the wall time. The test images are a CLIC photo
resized to the size (Lanczos, PNG). The commands run as a user runs them, except that the encoder's
and the fit's schedules are cut to a few steps (memory does not grow with the steps, the time does):

- ``encode``: ``lgi encode --bpp 1.0`` through the API, fit 8 steps, re-fits 2, fine-tuning 4 (the
  stages, the rate search and the whole-image fine-tuning as in a real encode; above 2^22 pixels the
  fit runs in tiles and the whole-image stages render in bands of rows, lgi_train.bands;
  ``--band-pixels 0`` renders them whole, as the encoder did before the bands, for comparison;
  ``--bpp`` another rate);
- ``fit``: ``lgi fit -n 20000 --steps 8``;
- ``preprocess``: ``lgi preprocess`` (every map);
- ``dictco``: ``lgi dictco compress`` with an untrained ``dcae-tiny`` checkpoint (the weights do not
  change the memory).

Writes benchmarks/results/memory.csv (resumed: rows already there are kept) with the peak in MB and
the bytes per pixel, and memory.png; the commands' default ``--max-pixels`` (``ENCODE_MAX_PIXELS`` in
lgi/codec_cli.py, ``FIT_MAX_PIXELS`` in lgi_train/cli.py, ``PREPROCESS_MAX_PIXELS`` in
lgi_preprocess/cli.py, ``COMPRESS_MAX_PIXELS`` in lgi_dictco/cli.py) come from these figures.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import RESULTS, cpu_name, write_csv

ROOT = Path(__file__).resolve().parents[1]
CLIC = ROOT.parent / "shared" / "data" / "clic2025" / "0c49a5cce349020bbba2f97ae41e90ba.png"
FIELDS = ["command", "width", "height", "megapixels", "peak_rss_mb", "bytes_per_pixel", "seconds", "status", "cpu"]
COMMANDS = ("encode", "fit", "preprocess", "dictco")


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants (0 once gone)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


def measured(cmd: list[str], env: dict | None = None) -> tuple[int, float, int]:
    """Run ``cmd``; (peak resident bytes of its process tree, wall seconds, exit status)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(proc.pid))
        time.sleep(0.1)
    err = proc.stderr.read()
    if proc.returncode:
        print(err[-2000:], file=sys.stderr)
    return peak, time.perf_counter() - t0, proc.returncode


def make_image(megapixels: float, folder: Path) -> Path:
    from PIL import Image

    path = folder / f"clic_{megapixels:g}mp.png"
    if not path.exists():
        src = Image.open(CLIC).convert("RGB")
        s = (megapixels * 1e6 / (src.width * src.height)) ** 0.5
        src.resize((round(src.width * s), round(src.height * s)), Image.LANCZOS).save(path, compress_level=1)
    return path


def encode_worker(image: str, bpp: float, band_pixels: int | None) -> None:
    """``lgi encode IMAGE --bpp BPP`` with the schedules cut short (memory, not quality, is measured).
    ``band_pixels``: lgi_train.bands.BAND_PIXELS for this run (0: no bands; None: the default)."""
    import dataclasses

    import torch

    import lgi_train.bands
    from lgi.codec_cli import encode_options
    from lgi_train.compress.encoder import encode_image
    from lgi_train.runs import load_target

    if band_pixels is not None:
        lgi_train.bands.BAND_PIXELS = band_pixels or 1 << 62
    torch.set_num_threads(2)
    target = load_target(image)
    opts = encode_options(target.shape[1:], bpp, None, None, None, 8, "cpu", 0, "auto")
    opts = dataclasses.replace(opts, refit_steps=2, second_pass_refit_steps=2,
                               codec=dataclasses.replace(opts.codec, finetune_steps=4))
    result = encode_image(target, opts)
    print(json.dumps({"bytes": len(result.data), "gaussians": result.num_gaussians}))


def command_line(command: str, image: Path, out: Path, checkpoint: Path, bpp: float = 1.0,
                 band_pixels: int | None = None) -> list[str]:
    lgi = str(Path(sys.executable).parent / "lgi")
    if command == "encode":
        bands = [] if band_pixels is None else ["--band-pixels", str(band_pixels)]
        return [sys.executable, __file__, "--encode-worker", str(image), "--bpp", str(bpp), *bands]
    if command == "fit":
        return [lgi, "fit", str(image), "-o", str(out / "run"), "-n", "20000", "--steps", "8", "-q"]
    if command == "preprocess":
        return [lgi, "preprocess", str(image), "-o", str(out / "maps"), "-q"]
    return [lgi, "dictco", "compress", str(image), "-o", str(out / "x.dcae"), "--checkpoint", str(checkpoint),
            "-q", "--force"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commands", default=",".join(COMMANDS))
    ap.add_argument("--megapixels", default="1,4,8")
    ap.add_argument("--out", type=Path, default=RESULTS / "memory.csv")
    ap.add_argument("--bpp", type=float, default=1.0, help="the encode's rate (default 1.0)")
    ap.add_argument("--band-pixels", type=int,
                    help="the encode's lgi_train.bands.BAND_PIXELS (0: whole-image renders, as before the bands)")
    ap.add_argument("--encode-worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.encode_worker:
        encode_worker(args.encode_worker, args.bpp, args.band_pixels)
        return 0
    rows = list(csv.DictReader(open(args.out))) if args.out.exists() else []
    done = {(r["command"], r["megapixels"]) for r in rows}
    work = Path(tempfile.mkdtemp(prefix="lgi-mem-"))
    checkpoint = work / "tiny.pt"
    if "dictco" in args.commands:
        import torch

        from lgi_dictco.dcae import build_model, save_checkpoint

        torch.manual_seed(0)
        model = build_model("dcae-tiny").eval()
        model.update()
        save_checkpoint(checkpoint, model)
    env = dict(os.environ)
    # Build (or find) the native kernels first: a compiler's memory is not the command's.
    subprocess.run([sys.executable, "-c", "import lgi_gsplat2d.native as g, lgi_fused_ssim._backend as s; "
                    "g.available(); s.kernel_status()"], env=env, check=True)
    for mp in [float(m) for m in args.megapixels.split(",")]:
        image = make_image(mp, work)
        from PIL import Image

        w, h = Image.open(image).size
        for command in args.commands.split(","):
            key = (command, f"{mp:g}")
            if key in done:
                continue
            out = Path(tempfile.mkdtemp(dir=work))
            peak, seconds, status = measured(command_line(command, image, out, checkpoint, args.bpp,
                                                          args.band_pixels), env)
            row = {"command": command, "width": w, "height": h, "megapixels": f"{mp:g}",
                   "peak_rss_mb": round(peak / 1e6), "bytes_per_pixel": round(peak / (w * h), 1),
                   "seconds": round(seconds, 1), "status": status, "cpu": cpu_name()}
            print(json.dumps(row), flush=True)
            rows.append(row)
            write_csv(args.out, rows, FIELDS)
    plot(rows, args.out.with_suffix(".png"))
    return 0


def plot(rows: list[dict], path: Path) -> None:
    """Peak memory against megapixels, a line per command, with the 8 GB budget of issue 14."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for command in COMMANDS:
        pts = sorted((float(r["megapixels"]), int(r["peak_rss_mb"]) / 1000) for r in rows if r["command"] == command)
        if pts:
            ax.plot(*zip(*pts), "o-", label=command)
    ax.axhline(8, color="gray", ls="--", lw=1, label="8 GB")
    ax.set_xlabel("megapixels")
    ax.set_ylabel("peak resident memory (GB)")
    ax.set_title("Peak memory of each command (short schedules)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
