"""Does a decoder-side post-filter pay its bits? (issue 17, item 6)

    flock /tmp/lgi-bench.lock python benchmarks/bench_postfilter.py --images kodim23,kodim05,kodim15

Each image is encoded as `lgi encode --bpp B` does; then a tiny residual convolutional network
(conv k×k 3→C, LeakyReLU, [conv 1×1 C→C, LeakyReLU], conv k×k C→3, added to its input; the last layer
starts at zero) is overfitted to map the decoded render to the original, as an overfitted codec would
at encode time, and its weights are quantized per tensor to 8 bits (the bits a file would carry, plus
a 32-bit scale per tensor). Reported per image and filter: PSNR of the decoded image, of the filtered
one (float weights and 8-bit weights), the weights' cost in bpp, the PSNR that cost would buy on LGI's
own RD curve (``--slope`` dB per bpp, measured around 0.5 bpp), and the filter's time on the decoded
image. Writes benchmarks/results/postfilter.csv and .png.
"""

from __future__ import annotations

import argparse
import copy
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from _common import KODAK, RESULTS, psnr8, write_csv
from torch import nn

FILTERS = {"c8": dict(channels=8, mid=True), "c8-nomid": dict(channels=8, mid=False),
           "c16": dict(channels=16, mid=True)}


class PostFilter(nn.Module):
    def __init__(self, channels: int = 8, kernel: int = 3, mid: bool = True):
        super().__init__()
        self.pad = kernel // 2
        self.first = nn.Conv2d(3, channels, kernel)
        self.mid = nn.Conv2d(channels, channels, 1) if mid else None
        self.last = nn.Conv2d(channels, 3, kernel)
        nn.init.zeros_(self.last.weight)
        nn.init.zeros_(self.last.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.leaky_relu(self.first(F.pad(x, [self.pad] * 4, mode="replicate")), 0.1)
        if self.mid is not None:
            y = F.leaky_relu(self.mid(y), 0.1)
        return x + self.last(F.pad(y, [self.pad] * 4, mode="replicate"))


def quantized_copy(pf: PostFilter, bits: int) -> tuple[PostFilter, int]:
    """The filter with every tensor on a uniform grid of 2^bits levels; and the bits it would take."""
    q = copy.deepcopy(pf)
    total = 0
    with torch.no_grad():
        for p in q.parameters():
            step = p.abs().max().clamp_min(1e-12) / (2 ** (bits - 1) - 1)
            p.copy_(torch.round(p / step) * step)
            total += p.numel() * bits + 32
    return q, total


def overfit(decoded: torch.Tensor, target: torch.Tensor, spec: dict, steps: int, lr: float) -> PostFilter:
    torch.manual_seed(0)
    pf = PostFilter(**spec)
    opt = torch.optim.Adam(pf.parameters(), lr=lr)
    x, t = decoded[None], target[None]
    for i in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * i / steps))
        loss = F.mse_loss(pf(x), t)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return pf


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", default="kodim23,kodim05,kodim15")
    ap.add_argument("--bpp", type=float, default=0.5)
    ap.add_argument("--effort", default="default", choices=["fast", "default", "max"])
    ap.add_argument("--filters", default=",".join(FILTERS))
    ap.add_argument("--steps", type=int, default=400, help="overfitting steps of the filter")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--slope", type=float, default=6.0, help="LGI's RD slope in dB per bpp (for the verdict)")
    ap.add_argument("--out", type=Path, default=RESULTS / "postfilter.csv")
    args = ap.parse_args()
    from lgi_train.compress.encoder import EncodeOptions, encode_image, target_bytes_for, with_effort
    from lgi_train.runs import load_target

    rows = []
    for stem in args.images.split(","):
        target = load_target(KODAK / f"{stem}.png")
        h, w = target.shape[1:]
        opts = with_effort(EncodeOptions(target_bytes=target_bytes_for(args.bpp, None, h, w)), args.effort)
        result = encode_image(target, opts)
        decoded = result.image
        base = psnr8(decoded, target)
        bpp = len(result.data) * 8 / (h * w)
        for name in args.filters.split(","):
            t0 = time.perf_counter()
            pf = overfit(decoded, target, FILTERS[name], args.steps, args.lr)
            train_s = time.perf_counter() - t0
            q, bits = quantized_copy(pf, 8)
            with torch.no_grad():
                flo = psnr8(pf(decoded[None])[0].clamp(0, 1), target)
                q8 = psnr8(q(decoded[None])[0].clamp(0, 1), target)
                times = []
                for _ in range(5):
                    t0 = time.perf_counter()
                    q(decoded[None])
                    times.append(time.perf_counter() - t0)
            cost = bits / (h * w)
            row = {"image": stem, "filter": name, "bpp": round(bpp, 4), "psnr": round(base, 3),
                   "psnr_filtered": round(flo, 3), "psnr_filtered_8bit": round(q8, 3), "filter_bpp": round(cost, 4),
                   "rd_value_db": round(cost * args.slope, 3), "net_db": round(q8 - base - cost * args.slope, 3),
                   "params": sum(p.numel() for p in pf.parameters()), "apply_ms": round(sorted(times)[2] * 1000, 1),
                   "train_s": round(train_s, 1)}
            rows.append(row)
            print(row, flush=True)
    write_csv(args.out, rows)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    names = args.filters.split(",")
    stems = args.images.split(",")
    for i, name in enumerate(names):
        gain = [next(r["psnr_filtered_8bit"] - r["psnr"] for r in rows if r["image"] == s and r["filter"] == name)
                for s in stems]
        cost = [next(r["rd_value_db"] for r in rows if r["image"] == s and r["filter"] == name) for s in stems]
        xs = [j + i * 0.8 / len(names) for j in range(len(stems))]
        ax.bar(xs, gain, width=0.8 / len(names), label=f"{name}: gain (8-bit weights)")
        ax.scatter(xs, cost, color="k", marker="_", s=200, zorder=3)
    ax.set_xticks([j + 0.4 - 0.4 / len(names) for j in range(len(stems))], stems)
    ax.set_ylabel("dB")
    ax.set_title(f"post-filter gain vs what its bits buy on LGI's curve (—), {args.bpp} bpp")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out.with_suffix(".png"), dpi=120)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
