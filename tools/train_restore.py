"""Train and ship the restoration networks of lgi-dictco (``lgi_dictco.restore``; docs/restore.md).

    python tools/train_restore.py corpus                  # runs/restore-corpus: the training images, as PNG
    python tools/train_restore.py degrade                 # each photo through LGI (0.25-2 bpp) and JPEG (10-95)
    python tools/train_restore.py train --source lgi --minutes 25     # runs/restore/lgi/model.pt (+ snapshots)
    python tools/train_restore.py train --source lgi --minutes 25 --conditioned --held-out   # level + early stop
    python tools/train_restore.py train --source jpeg --minutes 25
    python tools/train_restore.py ship                    # float16 weights, SHA-256, models.json, MODEL_CARD.md

The photographs are the natural colour photos that installed packages carry (the DCAE's list,
``tools/train_dcae.py``: scikit-image, matplotlib, gradio, mahotas), without the CLIC photos, which are
test images here, and without Kodak. Degradations are made by our own codecs: ``lgi.encode`` at the
default effort at 0.25, 0.5 and 1 bpp and at the fast effort at 2 bpp (the default one takes 2 minutes a
photo there), decoded by ``lgi.decode``; JPEG (Pillow, 4:2:0) at qualities 10-95
(the two highest rates and qualities show a network images with little to repair, as a 2-megapixel photo at
0.5 bpp is). ``--conditioned`` trains a network that reads each pair's level (the file's real bits per pixel,
the JPEG quality: ``lgi_dictco.restore.model.level_of``); ``--held-out`` keeps the photos of HELD_OUT (every
size of them) out of training, scores the network on them and keeps its best weights.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_dcae import PACKAGE_PHOTOS  # noqa: E402

CORPUS = ROOT / "runs" / "restore-corpus"
RUNS = ROOT / "runs" / "restore"
LGI_BPP = (0.25, 0.5, 1.0, 2.0)
#: The effort of LGI's encodes per rate (default where not named).
LGI_EFFORT = {2.0: "fast"}
JPEG_QUALITIES = (10, 20, 30, 40, 50, 60, 75, 85, 95)
#: Source photos (file-name prefixes of the corpus) held out for early stopping with ``train --held-out``.
HELD_OUT = ("skimage_coffee", "gradio_tower")
#: Snapshots of a run at these fractions of its time budget (the training-length ablation).
SNAPSHOTS = (0.25, 0.5)


def cmd_corpus(args) -> None:
    import importlib.util

    from PIL import Image

    CORPUS.mkdir(parents=True, exist_ok=True)
    entries = []
    for module, rel in PACKAGE_PHOTOS:
        spec = importlib.util.find_spec(module)
        src = None if spec is None or spec.origin is None else Path(spec.origin).parent / rel
        if src is None or not src.is_file():
            print(f"skipped {module}/{rel}: not installed here")
            continue
        with Image.open(src) as im:
            im = im.convert("RGB")
            # The originals at full size only where they are lossless (a JPEG source would teach the network its
            # artefacts as detail), and every photo reduced to 0.7 and 0.5 of its size with an antialiasing
            # filter, which removes a source's JPEG blocks and noise (and adds the detail density of Kodak).
            scales = ((1.0,) if src.suffix.lower() == ".png" else ()) + (0.7, 0.5)
            for scale in scales:
                w, h = round(im.width * scale) // 2 * 2, round(im.height * scale) // 2 * 2  # even sides
                dst = CORPUS / f"{module}_{Path(rel).stem}_s{round(100 * scale)}.png"
                (im.resize((w, h), Image.LANCZOS) if scale != 1 else im.crop((0, 0, w, h))).save(dst)
                entries.append({"file": dst.name, "source": f"{module} {__import__(module).__version__}: {rel}",
                                "scale": scale, "size": [w, h]})
    (CORPUS / "corpus.json").write_text(json.dumps(entries, indent=1) + "\n")
    print(f"{len(entries)} images, {sum(e['size'][0] * e['size'][1] for e in entries) / 1e6:.2f} MP in {CORPUS}")


def cmd_degrade(args) -> None:
    import io

    import numpy as np
    from PIL import Image

    import lgi

    entries = json.loads((CORPUS / "corpus.json").read_text())
    for e in entries:
        stem = Path(e["file"]).stem
        ref = np.asarray(Image.open(CORPUS / e["file"]).convert("RGB"))
        for bpp in LGI_BPP:
            out = CORPUS / f"{stem}_lgi{bpp}.png"
            if not out.exists():
                t0 = time.perf_counter()
                data = lgi.encode(ref, bpp=bpp, seed=0, effort=LGI_EFFORT.get(bpp, "default"))
                Image.fromarray(lgi.decode(data)).save(out)
                rec = {"file": out.name, "bytes": len(data), "seconds": round(time.perf_counter() - t0, 1)}
                with open(CORPUS / "degrade.json", "a") as f:  # as it goes: the sizes are the files' levels
                    f.write(json.dumps(rec) + "\n")
                print(f"{out.name}: {len(data)} bytes, {rec['seconds']} s", flush=True)
        for q in JPEG_QUALITIES:
            out = CORPUS / f"{stem}_jpeg{q}.png"
            buf = io.BytesIO()
            Image.fromarray(ref).save(buf, format="JPEG", quality=q)
            Image.open(buf).convert("RGB").save(out)


def pairs_for(source: str, levels: bool = False, held_out: bool = False):
    """(decoded, original[, level]) float tensors [3, H, W] of every corpus photo through ``source`` ("both":
    all); with ``held_out``, two lists: the pairs of the photos not in HELD_OUT, and those of HELD_OUT."""
    import numpy as np
    import torch
    from PIL import Image

    def tensor(path: Path):
        return torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), np.float32) / 255).permute(2, 0, 1).contiguous()

    suffixes = ([f"_lgi{b}" for b in LGI_BPP] if source in ("lgi", "both") else []) + (
        [f"_jpeg{q}" for q in JPEG_QUALITIES] if source in ("jpeg", "both") else [])
    from lgi_dictco.restore.model import level_of

    sizes = {}  # the LGI files' real sizes: their levels are the bits per pixel they spent
    for line in (CORPUS / "degrade.json").read_text().splitlines() if (CORPUS / "degrade.json").exists() else ():
        rec = json.loads(line)
        sizes[rec["file"]] = rec["bytes"]
    out, kept = [], []
    for e in json.loads((CORPUS / "corpus.json").read_text()):
        stem = Path(e["file"]).stem
        ref = tensor(CORPUS / e["file"])
        for s in suffixes:
            path = CORPUS / f"{stem}{s}.png"
            if not path.exists():
                sys.exit(f"{path} is missing: run `python tools/train_restore.py degrade` first")
            pair = (tensor(path), ref)
            if levels:
                if s.startswith("_lgi"):
                    bpp = 8 * sizes[path.name] / (ref.shape[1] * ref.shape[2]) if path.name in sizes else float(s[4:])
                    pair += (level_of("lgi", bpp),)
                else:
                    pair += (level_of("jpeg", float(s[5:])),)
            (kept if held_out and stem.startswith(HELD_OUT) else out).append(pair)
    return (out, kept) if held_out else out


def cmd_train(args) -> None:
    import torch

    from lgi_dictco.restore.model import RestoreConfig, RestoreNet
    from lgi_dictco.restore.train import TrainConfig, train

    torch.set_num_threads(args.threads)
    out = Path(args.out or RUNS / args.source)
    out.mkdir(parents=True, exist_ok=True)
    pairs, held = pairs_for(args.source, args.conditioned, held_out=True) if args.held_out else (
        pairs_for(args.source, args.conditioned), None)
    config = RestoreConfig(width=args.width, blocks=args.blocks, conditioned=args.conditioned)
    tc = TrainConfig(patch=args.patch, batch=args.batch, lr=args.lr, steps=args.steps, minutes=args.minutes,
                     seed=args.seed, loss=args.loss, val_every=args.val_every)
    command = "python tools/train_restore.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    net = RestoreNet(config)  # trained in place, so the snapshots below read its weights as they are
    taken = set()

    def on_step(step, loss, seconds):
        if step % 50 == 0:
            print(f"step {step} loss {loss:.5f} {seconds:.0f} s", flush=True)
        for frac in SNAPSHOTS if args.minutes else ():
            if frac not in taken and seconds >= frac * 60 * args.minutes:
                taken.add(frac)
                torch.save({"config": config.to_dict(), "state_dict": net.state_dict(), "steps": step,
                            "seconds": round(seconds, 1)}, out / f"snapshot_{frac}.pt")

    net, record = train(pairs, config, tc, on_step=on_step, model=net, held_out=held)
    record.update(command=command, pairs=len(pairs), held_out_pairs=len(held or ()), threads=args.threads,
                  **{k: getattr(tc, k) for k in ("patch", "batch", "lr", "seed", "loss")})
    torch.save({"config": config.to_dict(), "state_dict": net.state_dict(), "record": record}, out / "model.pt")
    print(json.dumps(record))


def cmd_ship(args) -> None:
    import torch

    from lgi_dictco.dcae.pretrained import sha256_of
    from lgi_dictco.restore import MANIFEST, WEIGHTS

    models = []
    for source in ("lgi", "jpeg"):
        ckpt = torch.load(RUNS / source / "model.pt", map_location="cpu", weights_only=True)
        dst = WEIGHTS / f"restore-{source}.pt"
        torch.save({k: v.half() for k, v in ckpt["state_dict"].items()}, dst)
        models.append({"source": source, "file": dst.name, "sha256": sha256_of(dst), "config": ckpt["config"],
                       "record": ckpt["record"]})
    corpus = json.loads((CORPUS / "corpus.json").read_text())
    MANIFEST.write_text(json.dumps({"models": models, "corpus": corpus}, indent=1) + "\n")
    lines = ["# Restoration models of lgi-dictco", "",
             "Small residual CNNs (`lgi_dictco.restore.model.RestoreNet`) that remove a codec's artefacts from a "
             "decoded image in one pass; one per source codec. Written by `python tools/train_restore.py ship`.", "",
             f"Training photos ({len(corpus)}; neither Kodak nor CLIC, which are the test images):", ""]
    lines += [f"- `{c['file']}` ({c['size'][0]}×{c['size'][1]}): {c['source']}" for c in corpus]
    lines += ["", "Degradations: `lgi.encode` at " + ", ".join(f"{b} ({LGI_EFFORT.get(b, 'default')} effort)"
                                                         for b in LGI_BPP) + " bpp; JPEG "
              "(Pillow) at qualities " + ", ".join(map(str, JPEG_QUALITIES)) + ".", ""]
    for m in models:
        r = m["record"]
        lines += [f"## {m['source']}", "", f"- sizes: width {m['config']['width']}, {m['config']['blocks']} blocks; "
                  f"file `{m['file']}` (float16), SHA-256 `{m['sha256']}`",
                  f"- trained: {r['steps']} steps in {r['seconds']} s on {r['threads']} thread(s), crops "
                  f"{r['patch']}², batch {r['batch']}, {r['loss']} loss {r['loss_first']:.5f} → {r['loss_last']:.5f}",
                  f"- command: `{r['command']}`", ""]
    (WEIGHTS / "MODEL_CARD.md").write_text("\n".join(lines))
    print(f"shipped {[m['file'] for m in models]} into {WEIGHTS}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(required=True)
    sub.add_parser("corpus", help="write the training photos").set_defaults(func=cmd_corpus)
    sub.add_parser("degrade", help="the photos through LGI and JPEG").set_defaults(func=cmd_degrade)
    p = sub.add_parser("train", help="train one source's model")
    p.add_argument("--source", choices=("lgi", "jpeg", "both"), required=True,
                   help="both: one model for the two codecs (the ablation of one model per codec)")
    p.add_argument("--minutes", type=float)
    p.add_argument("--steps", type=int, default=1_000_000)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--blocks", type=int, default=5)
    p.add_argument("--patch", type=int, default=64)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--loss", choices=("mse", "l1"), default="mse")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--conditioned", action="store_true", help="the network reads each pair's level (bpp, quality)")
    p.add_argument("--held-out", action="store_true",
                   help="keep the photos of HELD_OUT out of training; keep the weights that score best on them")
    p.add_argument("--val-every", type=int, default=500, help="steps between scores on the held-out photos")
    p.add_argument("-o", "--out")
    p.set_defaults(func=cmd_train)
    sub.add_parser("ship", help="copy the trained models into lgi-dictco").set_defaults(func=cmd_ship)
    args = ap.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
