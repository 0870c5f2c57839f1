"""Train the DCAE models that lgi-dictco ships, reproducibly, on data that is not Kodak.

    python tools/train_dcae.py corpus                 # the training folder runs/dcae-corpus (+ corpus.json)
    python tools/train_dcae.py base --minutes 60      # from scratch: one process per base λ, in parallel
    python tools/train_dcae.py finetune --minutes 30  # the other λ, each started from its nearest base
    python tools/train_dcae.py continue --minutes 30  # more steps for every model, from its last.pt
    python tools/train_dcae.py ship                   # float16 weights + model card into the package

Every training run is an ``lgi dictco train`` command (printed, and kept in runs/dcae-ship/<q>/command.txt
and in the checkpoint); its step and epoch logs are CSV files beside the checkpoints and are copied to
benchmarks/results/dictco_train/ by ``ship``. ``--minutes`` is turned into a step count from a short
timing run, so the learning-rate schedule (a 10x decay for the last 15 % of the steps) fits the budget.

The data (``corpus``): the seven CLIC 2025 photos of ../shared/data/clic2025 and the natural colour
photographs that installed Python packages ship (scikit-image, matplotlib, gradio, mahotas), as PNG.
Kodak is the test set only; it is never read here. Training takes random 128x128 crops with left-right
flips and scale augmentation (crops of 128/s source pixels, s in [0.4, 1], shrunk to 128).

A GPU, when lent for minutes: ``python tools/train_dcae.py continue --device cuda --minutes 8`` continues
every model with AMP on; ``python tools/train_dcae.py ship --only-better`` then ships a model only when its
rate-distortion loss on Kodak went down (benchmarks/bench_dictco.py rd measures the result).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLIC = ROOT.parent / "shared" / "data" / "clic2025"
KODAK = ROOT.parent / "shared" / "data" / "kodak"  # the test set: read by `ship` only, to measure
CORPUS = Path(os.environ.get("LGI_DCAE_CORPUS", ROOT / "runs" / "dcae-corpus")).resolve()
RUNS = ROOT / "runs" / "dcae-ship"
LOGS = ROOT / "benchmarks" / "results" / "dictco_train"
PRESET = "dcae-small"

#: Quality level -> λ (MSE). Spread for about 0.1 to 1 bpp on Kodak.
LAMBDAS = {1: 0.0025, 2: 0.0067, 3: 0.018, 4: 0.048}
#: The models trained from scratch, and the base each fine-tuned level starts from.
BASES = (2, 3)
FINETUNE_FROM = {1: 2, 4: 3}
#: Crops, batch, learning rate of every run.
PATCH, BATCH, LR = 128, 8, 3e-4
SCALE_MIN = 0.4
#: Crops per image per epoch (one epoch = len(corpus) * REPEATS / BATCH steps: checkpoints at its end).
REPEATS = 40

#: (module, file inside it): natural colour photographs that installed packages carry.
PACKAGE_PHOTOS = (
    ("skimage", "data/astronaut.png"),
    ("skimage", "data/chelsea.png"),
    ("skimage", "data/coffee.png"),
    ("skimage", "data/motorcycle_left.png"),
    ("skimage", "data/rocket.jpg"),
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    ("gradio", "media_assets/images/cheetah.jpg"),
    ("gradio", "media_assets/images/tower.jpg"),
    ("mahotas", "demos/data/DepartmentStore.jpg"),
)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cmd_corpus(args) -> None:
    """Write the training folder: CLIC photos copied, package photos converted to RGB PNG."""
    import importlib.util

    from PIL import Image

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    entries = []

    def write(src: Path, dst: Path) -> None:
        with Image.open(src) as im:
            im = im.convert("RGB")
            if args.scale != 1:  # a smaller copy to carry to a lent GPU
                im = im.resize((round(im.width * args.scale), round(im.height * args.scale)), Image.LANCZOS)
            im.save(dst)

    for src in sorted(CLIC.glob("*.png")):
        dst = out / f"clic_{src.stem[:8]}.png"
        write(src, dst)
        entries.append({"file": dst.name, "source": f"shared/data/clic2025/{src.name}", "sha256": _sha256(src)})
    for module, rel in PACKAGE_PHOTOS:
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            print(f"skipped {module}/{rel}: {module} is not installed")
            continue
        src = Path(spec.origin).parent / rel
        if not src.is_file():
            print(f"skipped {module}/{rel}: not in this version of {module}")
            continue
        dst = out / f"{module}_{Path(rel).stem}.png"
        write(src, dst)
        version = __import__(module).__version__
        entries.append({"file": dst.name, "source": f"{module} {version}: {rel}", "sha256": _sha256(src)})
    for e in entries:
        with Image.open(out / e["file"]) as im:
            e["size"] = list(im.size)
    (out / "corpus.json").write_text(json.dumps(entries, indent=1) + "\n")
    pixels = sum(e["size"][0] * e["size"][1] for e in entries)
    print(f"{len(entries)} images, {pixels / 1e6:.1f} MP -> {out}")


def _lgi() -> list[str]:
    """`lgi dictco` where the umbrella CLI is installed, else the same command through its module."""
    lgi = Path(sys.executable).parent / "lgi"
    return [str(lgi), "dictco"] if lgi.is_file() else [sys.executable, "-m", "lgi_dictco.cli"]


def _stages(q: int) -> list[Path]:
    """The run folders of level q, oldest first: q<N> (trained from scratch or fine-tuned), then q<N>.2, …"""
    found = [RUNS / f"q{q}"] + sorted(RUNS.glob(f"q{q}.*"), key=lambda p: int(p.suffix[1:]))
    return [p for p in found if (p / "last.pt").is_file()]


def _latest(q: int) -> Path:
    stages = _stages(q)
    if not stages:
        raise SystemExit(f"q{q} has no trained checkpoint under {RUNS}: run `base` and `finetune` first")
    return stages[-1]


def _seed(q: int, out: Path) -> int:
    """Level q's first run takes seed q, its stage q<N>.<k> seed q + 100 k: a warm restart draws new crops
    instead of replaying those of the stage before. (The stages up to q<N>.2 were run with seed q; their
    command.txt records it.)"""
    stage = int(out.suffix[1:]) if out.suffix[1:].isdigit() else 0
    return q + 100 * stage


def _train_command(q: int, steps: int, device: str, threads: int, init: Path | None, out: Path) -> list[str]:
    n_images = len(json.loads((CORPUS / "corpus.json").read_text()))
    steps_per_epoch = max(n_images * REPEATS // BATCH, 1)
    epochs = -(-steps // steps_per_epoch)
    decay = max(int(epochs * 0.85), 1)
    cmd = [
        *_lgi(), "train", "--data", os.path.relpath(CORPUS, ROOT), "--model", PRESET,
        "--lambda", str(LAMBDAS[q]), "-o", str(out.relative_to(ROOT)),
        "--patch-size", str(PATCH), "--batch-size", str(BATCH), "--repeats", str(REPEATS),
        "--lr", str(LR), "--milestones", str(decay), "--gamma", "0.1", "--epochs", str(epochs),
        "--max-steps", str(steps), "--hflip", "--scale-min", str(SCALE_MIN), "--workers", "0",
        "--threads", str(threads), "--device", device, "--seed", str(_seed(q, out)), "-q",
    ]
    if init is not None:
        cmd += ["--init", str(init.relative_to(ROOT))]
    return cmd


def _seconds_per_step(device: str, threads: int) -> float:
    """Time 6 training steps of the preset (after 2 of warm-up) on the corpus' crop size."""
    import torch

    from lgi_dictco.dcae.registry import build_model
    from lgi_dictco.dcae.train import RateDistortionLoss, configure_optimizers

    torch.set_num_threads(threads)
    dev = torch.device(device)
    model = build_model(PRESET).to(dev).train()
    opt, _ = configure_optimizers(model, LR, 1e-3)
    loss = RateDistortionLoss(0.01)
    x = torch.rand(BATCH, 3, PATCH, PATCH, device=dev)
    times = []
    for _ in range(8):
        t0 = time.perf_counter()
        opt.zero_grad()
        with torch.autocast(dev.type, dtype=torch.float16, enabled=dev.type == "cuda"):
            out = model(x)
        loss(out, x)["loss"].backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return sorted(times[2:])[len(times[2:]) // 2]


def _run_all(jobs: list[tuple[int, list[str]]]) -> None:
    """Run the training commands in parallel, each logging to train.out in its output folder."""

    def one(job):
        q, cmd = job
        out_dir = ROOT / cmd[cmd.index("-o") + 1]
        out_dir.mkdir(parents=True, exist_ok=True)
        shown = " ".join(["lgi", "dictco", *cmd[cmd.index("train"):]])
        with (out_dir / "command.txt").open("a") as f:
            f.write(shown + "\n")
        print(f"q{q}: {shown}", flush=True)
        with (out_dir / "train.out").open("a") as log:
            rc = subprocess.call(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        print(f"q{q}: exit {rc}", flush=True)
        return rc

    with ThreadPoolExecutor(len(jobs)) as pool:
        codes = list(pool.map(one, jobs))
    if any(codes):
        raise SystemExit(f"training failed: exit codes {codes} (logs in {RUNS}/q*/train.out)")


def _steps(args, processes: int) -> int:
    if args.steps:
        return args.steps
    per_step = _seconds_per_step(args.device, args.threads)
    if args.device == "cpu":  # processes beyond the cores share them; 10 % for memory-bandwidth contention
        per_step *= 1.1 * max(1.0, processes * args.threads / (os.cpu_count() or 1))
    steps = max(int(args.minutes * 60 / per_step), 1)
    print(f"{per_step:.2f} s a step with {processes} process(es) sharing the CPU: {steps} steps in "
          f"{args.minutes} min", flush=True)
    return steps


def cmd_base(args) -> None:
    levels = [int(q) for q in args.levels.split(",")] if args.levels else list(BASES)
    steps = _steps(args, len(levels))
    _run_all([(q, _train_command(q, steps, args.device, args.threads, None, RUNS / f"q{q}")) for q in levels])


def cmd_finetune(args) -> None:
    levels = [int(q) for q in args.levels.split(",")] if args.levels else list(FINETUNE_FROM)
    steps = _steps(args, len(levels))
    jobs = []
    for q in levels:
        base = _latest(FINETUNE_FROM[q]) / "last.pt"
        jobs.append((q, _train_command(q, steps, args.device, args.threads, base, RUNS / f"q{q}")))
    _run_all(jobs)


def _from_shipped(q: int) -> Path:
    """A checkpoint of the shipped float16 weights of level q (float32), for runs without the run folders
    (a lent GPU gets the repository, not runs/). It carries the shipped model's training history, and its
    name the weights' checksum, so a later `ship` credits exactly the steps behind these weights."""
    from lgi_dictco.dcae import pretrained, save_checkpoint

    model, entry = pretrained.load_pretrained(q)
    path = RUNS / "shipped" / f"q{q}-{entry.sha256[:12]}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, model, lmbda=entry.lmbda, metric="mse", shipped_sha256=entry.sha256,
                    shipped_history=_manifest_history(q))
    return path


def _manifest_history(q: int) -> list[dict]:
    """The training history the package's manifest records for level q's shipped weights."""
    from lgi_dictco.dcae import pretrained

    manifest = json.loads(pretrained.MANIFEST.read_text())
    return next(m for m in manifest["models"] if int(m["quality"]) == q)["history"]


def cmd_continue(args) -> None:
    """A warm restart of every level from its latest checkpoint into a new stage folder (fresh schedule)."""
    levels = [int(q) for q in args.levels.split(",")] if args.levels else sorted(LAMBDAS)
    parallel = 1 if args.device != "cpu" else len(levels)
    steps = _steps(args, parallel)
    if parallel == 1:  # one level after another: the budget is shared
        steps = max(steps // len(levels), 1)
    jobs = []
    for q in levels:
        start = _from_shipped(q) if args.from_shipped else _latest(q) / "last.pt"
        out = RUNS / f"q{q}.{len(_stages(q)) + 1}"
        jobs.append((q, _train_command(q, steps, args.device, args.threads, start, out)))
    if parallel == 1:
        for job in jobs:
            _run_all([job])
    else:
        _run_all(jobs)


def cmd_export(args) -> None:
    """Each level's latest run as a float16 checkpoint (weights, λ, step, its command) and its step log."""
    import torch

    from lgi_dictco.dcae.checkpoint import load_checkpoint

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for q in sorted(LAMBDAS):
        folder = _latest(q)
        ckpt = load_checkpoint(folder / "last.pt")
        keep = {k: ckpt[k] for k in ("kind", "version", "model_name", "config", "lmbda", "metric", "step",
                                     "epoch", "train_config") if k in ckpt}
        keep["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()}
        keep["commands"] = (folder / "command.txt").read_text()
        keep["device"] = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
        torch.save(keep, out / f"q{q}.pt")
        shutil.copyfile(folder / "train_log.csv", out / f"q{q}_log.csv")
        print(f"q{q}: {folder.name}, step {keep['step']} -> {out / f'q{q}.pt'}")


def cmd_import(args) -> None:
    """Exported checkpoints become the newest stage of each level (then `ship --only-better`)."""
    import torch

    folder = Path(args.folder)
    for src in sorted(folder.glob("q*.pt")):
        q = int(src.stem[1:])
        ckpt = torch.load(src, map_location="cpu", weights_only=True)
        ckpt["state_dict"] = {k: v.float() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()}
        out = RUNS / f"q{q}.{len(_stages(q)) + 1}"
        out.mkdir(parents=True)
        (out / "command.txt").write_text(f"# on {ckpt.pop('device', '?')}\n" + ckpt.pop("commands", ""))
        torch.save(ckpt, out / "last.pt")
        if (folder / f"q{q}_log.csv").is_file():
            shutil.copyfile(folder / f"q{q}_log.csv", out / "train_log.csv")
        print(f"q{q}: step {ckpt.get('step')} -> {out}")


def _history(q: int) -> list[dict]:
    """Every training command behind level q's latest weights, the bases it started from included."""
    chain, seen = [], set()
    folder = _latest(q)
    while folder is not None and folder not in seen:
        seen.add(folder)
        commands = (folder / "command.txt").read_text().strip().splitlines()
        ckpt_cfg = _train_config(folder / "last.pt")
        chain.append({"run": folder.name, "commands": commands, "steps": ckpt_cfg["steps"]})
        init = ckpt_cfg.get("init")
        folder = (ROOT / init).parent if init else None
        if folder is not None and folder.name == "shipped":  # started from the shipped weights
            return _shipped_history(q, ROOT / init, chain[-1]) + list(reversed(chain))
    return list(reversed(chain))


def _shipped_history(q: int, init: Path, first: dict) -> list[dict]:
    """The history of the shipped weights a run started from: recorded in the checkpoint `_from_shipped`
    wrote, or (checkpoints written before it recorded one) the manifest's, up to the run itself if that
    run has been shipped since (else its steps would count twice)."""
    from lgi_dictco.dcae.checkpoint import load_checkpoint

    recorded = load_checkpoint(init).get("shipped_history")
    if recorded is not None:
        return recorded
    before = _manifest_history(q)
    same = [i for i, h in enumerate(before) if h["run"] == first["run"] and h["commands"] == first["commands"]]
    return before[: same[0]] if same else before


def _train_config(path: Path) -> dict:
    from lgi_dictco.dcae.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    return {**ckpt.get("train_config", {}), "steps": int(ckpt.get("step", 0))}


def _kodak(model, lmbda: float, threads: int) -> dict:
    """Means over the 24 Kodak images with real bitstreams: bpp, PSNR, MS-SSIM, and the RD loss."""
    import torch

    from lgi_dictco.dcae.evaluate import evaluate, summarize
    from lgi_dictco.dcae.io import list_images

    torch.set_num_threads(threads)
    rows = evaluate(model, list_images(KODAK), real=True, lmbda=lmbda, metric="mse")
    mean = summarize(rows)
    mse = sum((10 ** (-r["psnr_8bit"] / 10)) for r in rows) / len(rows)
    return {
        "images": len(rows),
        "bpp": round(mean["bpp"], 4),
        "psnr": round(mean["psnr_8bit"], 3),
        "ms_ssim": round(mean["ms_ssim"], 4),
        "loss": round(lmbda * 255**2 * mse + mean["bpp"], 4),
    }


def cmd_ship(args) -> None:
    """float16 weights, checksums, Kodak figures and training history into the package's weights/."""
    import torch

    from lgi_dictco.dcae import pretrained
    from lgi_dictco.dcae.checkpoint import load_checkpoint, model_from_checkpoint

    weights = pretrained.WEIGHTS
    weights.mkdir(exist_ok=True)
    old = {m.quality: m for m in pretrained.list_pretrained()}
    levels = [int(q) for q in args.levels.split(",")] if args.levels else sorted(LAMBDAS)
    manifest = json.loads(pretrained.MANIFEST.read_text()) if pretrained.MANIFEST.is_file() else {"models": []}
    entries = {int(m["quality"]): m for m in manifest["models"]}
    LOGS.mkdir(parents=True, exist_ok=True)
    for q in levels:
        folder = _latest(q)
        model = model_from_checkpoint(load_checkpoint(folder / "last.pt"))
        name = f"{PRESET}-q{q}.pt"
        tmp = weights / f".{name}.new"
        torch.save(pretrained.to_half_state_dict(model), tmp)
        # What a user loads: the float16 file, back in float32.
        half = torch.load(tmp, map_location="cpu", weights_only=True)
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in half.items()})
        model.eval().update(force=True)
        kodak = _kodak(model, LAMBDAS[q], args.threads)
        print(f"q{q} ({folder.name}): Kodak {kodak['bpp']:.4f} bpp, {kodak['psnr']:.2f} dB, "
              f"loss {kodak['loss']:.4f}", flush=True)
        if args.only_better and q in old and old[q].kodak.get("loss", float("inf")) <= kodak["loss"]:
            print(f"q{q}: not shipped, the shipped model's Kodak loss is {old[q].kodak['loss']:.4f}")
            tmp.unlink()
            continue
        tmp.replace(weights / name)
        history = _history(q)
        entries[q] = {
            "quality": q,
            "preset": PRESET,
            "lmbda": LAMBDAS[q],
            "file": name,
            "sha256": pretrained.sha256_of(weights / name),
            "fingerprint": model.fingerprint(),
            "steps": sum(h["steps"] for h in history),
            "kodak": kodak,
            "history": history,
        }
        for run in history:
            for log in ("train_log.csv", "epochs.csv"):
                src = RUNS / run["run"] / log
                if src.is_file():
                    shutil.copyfile(src, LOGS / f"{run['run']}_{log}")
    manifest["models"] = [entries[q] for q in sorted(entries)]
    manifest["corpus"] = json.loads((CORPUS / "corpus.json").read_text())
    pretrained.MANIFEST.write_text(json.dumps(manifest, indent=1) + "\n")
    (weights / "MODEL_CARD.md").write_text(_model_card(manifest))
    print(f"wrote {pretrained.MANIFEST.relative_to(ROOT)} and MODEL_CARD.md")


def _model_card(manifest: dict) -> str:
    """The people's version of models.json (written by `ship`, never by hand)."""
    lines = [
        "# DCAE weights shipped with lgi-dictco",
        "",
        "Written by `python tools/train_dcae.py ship` from `models.json` beside it; do not edit by hand.",
        "",
        f"Architecture: the `{PRESET}` preset of `lgi_dictco.dcae.registry` (DCAE, Lu et al., CVPR 2025, with",
        "fewer channels and layers). Loss λ·255²·MSE + bpp (RGB, 8-bit range). Stored as float16 state dicts;",
        "they load as float32, and a `.dcae` file names its weights by their CRC32 fingerprint.",
        "",
        "| quality | λ | training steps | Kodak bpp | Kodak PSNR (dB) | Kodak MS-SSIM | file | SHA-256 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in manifest["models"]:
        k = m["kodak"]
        lines.append(f"| {m['quality']} | {m['lmbda']:g} | {m['steps']} | {k['bpp']:.4f} | {k['psnr']:.2f} | "
                     f"{k['ms_ssim']:.4f} | `{m['file']}` | `{m['sha256'][:16]}…` |")
    lines += [
        "",
        "Kodak figures: means over the 24 Kodak images, on the CPU: bpp of the real `.dcae` files (header",
        "included), PSNR of the decoded images written as 8-bit RGB, MS-SSIM of the reconstruction. Kodak is",
        "never part of the training data.",
        "",
        "## Training data",
        "",
        "Random 128×128 crops with left-right flips and scale augmentation (crops of 128/s pixels shrunk to",
        f"128, s log-uniform in [{SCALE_MIN}, 1]) of these {len(manifest['corpus'])} photographs "
        "(`python tools/train_dcae.py corpus`):",
        "",
    ]
    lines += [f"- `{c['file']}` ({c['size'][0]}×{c['size'][1]}): {c['source']}" for c in manifest["corpus"]]
    lines += ["", "## Training commands, in order (each run starts from the previous one's weights)", ""]
    for m in manifest["models"]:
        lines.append(f"Quality {m['quality']}:")
        lines.append("")
        lines.append("```")
        for run in m["history"]:
            lines += [f"# {run['run']}: {run['steps']} steps", *run["commands"]]
        lines += ["```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("corpus", help="write the training folder")
    p.add_argument("--out", default=str(CORPUS))
    p.add_argument("--scale", type=float, default=1.0, help="resize every photo (0.5 for a GPU's carry)")
    p.set_defaults(func=cmd_corpus)
    p = sub.add_parser("export", help="(on a lent GPU) the latest run of every level as float16 checkpoints")
    p.add_argument("out", help="folder to write q<N>.pt and q<N>_log.csv into")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("import", help="(here) put exported checkpoints back as new stages of runs/dcae-ship")
    p.add_argument("folder", help="what `export` wrote")
    p.set_defaults(func=cmd_import)
    for name, func in (("base", cmd_base), ("finetune", cmd_finetune), ("continue", cmd_continue)):
        p = sub.add_parser(name)
        if name == "continue":
            p.add_argument("--from-shipped", action="store_true",
                           help="start from the package's float16 weights instead of runs/dcae-ship")
        p.add_argument("--minutes", type=float, default=60.0, help="wall-clock budget of the whole phase")
        p.add_argument("--steps", type=int, help="steps per model (instead of --minutes)")
        p.add_argument("--levels", help="comma-separated quality levels (default: all of the phase)")
        p.add_argument("--device", default="cpu")
        p.add_argument("--threads", type=int, default=1, help="torch threads per training process")
        p.set_defaults(func=func)
    p = sub.add_parser("ship", help="float16 weights + manifest into lgi_dictco/dcae/weights")
    p.add_argument("--levels", help="comma-separated quality levels (default: all)")
    p.add_argument("--only-better", action="store_true", help="keep a shipped model unless the new one's "
                   "Kodak loss λ·255²·MSE + bpp is lower")
    p.add_argument("--threads", type=int, default=2)
    p.set_defaults(func=cmd_ship)
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
