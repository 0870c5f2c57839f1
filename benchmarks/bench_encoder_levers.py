"""One lever of the encoder at a time: a Tuning override, measured on the fit alone or on a whole encode.

    python benchmarks/bench_encoder_levers.py fit --images kodim05,kodim23 --gaussians 5100 \\
        --tuning '{"lr_color": 0.01}'
    python benchmarks/bench_encoder_levers.py encode --images kodim05,kodim14,kodim23 --bpp 0.5 \\
        --tuning '{"finetune_lr": 1.0, "finetune": [{"name": "f", "steps": 120, "lr": 1.0, "lr_end": 0.0}]}'

``--tuning`` is JSON: fields of lgi_train.encode.Tuning (``fit`` and ``finetune`` as lists of Phase
fields, ``codec`` as CodecSettings fields) applied to the ``--effort``'s tuning. ``fit`` prints the float
fit's PSNR (the whole plan; with ``--select``, in the pipeline's order: N × overshoot fitted, the N most
important kept after the ``select_after`` phases) and its time per phase; ``encode`` prints the file's bpp, PSNR
and stage times and the rate log. Run alone: one job at a time on the machine (docs/encoder.md).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import KODAK, cpu_name  # noqa: E402


def tuning_from(effort: str, spec: str):
    from lgi_train.compress.codec import CodecSettings
    from lgi_train.encode import TUNINGS, Phase

    changes = json.loads(spec) if spec else {}
    for key in ("fit", "finetune"):
        if key in changes:
            changes[key] = tuple(Phase(**p) for p in changes[key])
    if "codec" in changes:
        changes["codec"] = CodecSettings(**changes["codec"])
    return TUNINGS[effort].replace(**changes)


def load(name: str) -> tuple[np.ndarray, torch.Tensor]:
    ref = np.asarray(Image.open(KODAK / f"{name}.png").convert("RGB"))
    return ref, torch.from_numpy(ref.astype(np.float32) / 255).permute(2, 0, 1).contiguous()


def fit_only(args, tuning) -> None:
    from lgi_train.compress.sensitivity import calc_sensitivity
    from lgi_train.encode.fitting import fit, learning_rates
    from lgi_train.encode.initialise import initial_model
    from lgi_train.encode.select import subset
    from lgi_train.losses import clamped_mse

    for name in args.images.split(","):
        _, target = load(name)
        h, w = target.shape[1:]
        g = torch.Generator().manual_seed(0)
        t0 = time.perf_counter()
        lrs = learning_rates(tuning, h, w)
        if args.select:  # the pipeline's order without its rate model: fit N × overshoot, keep the N most
            # important after the plan's first select_after phases, refine them with the rest
            n_fit = round(args.gaussians * tuning.overshoot)
            model = initial_model(target, round(n_fit * tuning.start_share), tuning, tuning.topk, g)
            first, rest = tuning.fit[:tuning.select_after], tuning.fit[tuning.select_after:]
            log = fit(model, target, first, lrs, n_fit, g, init_scale=tuning.init_scale)
            order = torch.argsort(calc_sensitivity(model, h, w).importance.cpu(), descending=True, stable=True)
            model = subset(model, order, args.gaussians)
            log.phases += fit(model, target, rest, lrs, args.gaussians, g, init_scale=tuning.init_scale).phases
        else:
            model = initial_model(target, round(args.gaussians * tuning.start_share), tuning, tuning.topk, g)
            log = fit(model, target, tuning.fit, lrs, args.gaussians, g, init_scale=tuning.init_scale)
        seconds = time.perf_counter() - t0
        with torch.no_grad():
            psnr = 10 * math.log10(1 / clamped_mse(model.render(h, w), target))
        phases = ", ".join(f"{p} {n} steps {s:.1f} s" for p, n, s in log.phases)
        print(f"{name} N={model.num_gaussians}: fit {psnr:.3f} dB in {seconds:.1f} s ({phases})", flush=True)


def whole_encode(args, tuning) -> None:
    from lgi.decoding import decode, to_uint8
    from lgi_train.encode import Options, encode

    for name in args.images.split(","):
        ref, target = load(name)
        h, w = ref.shape[:2]
        t0 = time.perf_counter()
        result = encode(target, Options(bpp=args.bpp, tuning=tuning))
        seconds = time.perf_counter() - t0
        dec = to_uint8(decode(result.data).image)
        psnr = 10 * math.log10(255 ** 2 / np.mean((dec.astype(np.float64) - ref) ** 2))
        log = result.rate_log
        stages = ", ".join(f"{k} {v:.1f}" for k, v in result.stage_seconds.items())
        print(f"{name} {args.bpp}: {len(result.data) * 8 / (h * w):.4f} bpp {psnr:.3f} dB {seconds:.1f} s ({stages}); "
              f"fitted {log['fitted']} kept {log['kept']}, {len(log['probes'])} probes, price {log['price']}, "
              f"{log['final_bytes']}/{log['target_bytes']} bytes, {log['trims']} trims", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["fit", "encode"])
    ap.add_argument("--images", default="kodim05,kodim14,kodim23")
    ap.add_argument("--effort", default="default")
    ap.add_argument("--tuning", default="", help="JSON: Tuning fields to override")
    ap.add_argument("--gaussians", type=int, default=5100, help="fit: the count")
    ap.add_argument("--select", action="store_true",
                    help="fit: the pipeline's order (N x overshoot fitted, the N most important kept after "
                         "the select_after phases), without its rate model")
    ap.add_argument("--bpp", type=float, default=0.5, help="encode: the target")
    args = ap.parse_args()
    print(f"{cpu_name()}, {torch.get_num_threads()} threads", flush=True)
    tuning = tuning_from(args.effort, args.tuning)
    fit_only(args, tuning) if args.what == "fit" else whole_encode(args, tuning)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
