"""Evaluating a DCAE model on a folder of images: PSNR, MS-SSIM, estimated and real bits per pixel."""

from __future__ import annotations

import csv
import io
import math
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from torch import Tensor

from lgi_dictco.dcae.codec import decode, encode
from lgi_dictco.dcae.io import load_image
from lgi_dictco.dcae.model import DCAE
from lgi_dictco.fileio import atomic_write_bytes

#: MS-SSIM with 5 scales and an 11×11 window needs images larger than this on their short side.
MS_SSIM_MIN_SIDE = 161


def psnr(a: Tensor, b: Tensor) -> float:
    """PSNR in dB of two images in [0, 1] (inf when identical)."""
    mse = torch.mean((a.float() - b.float()) ** 2).item()
    return math.inf if mse == 0 else -10 * math.log10(mse)


def ms_ssim(a: Tensor, b: Tensor) -> float:
    """MS-SSIM of two [1, 3, H, W] images in [0, 1]; NaN when the image is too small for 5 scales."""
    if min(a.shape[-2:]) < MS_SSIM_MIN_SIDE:
        return math.nan
    from pytorch_msssim import ms_ssim as _ms_ssim

    return float(_ms_ssim(a.float(), b.float(), data_range=1.0))


def _to_8bit(x: Tensor) -> Tensor:
    return x.clamp(0, 1).mul(255).round().div(255)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def evaluate_image(
    model: DCAE, x: Tensor, *, real: bool = False, lmbda: float = 0.0, metric: str = "unknown"
) -> dict:
    """Metrics of one image [1, 3, H, W] in [0, 1].

    Returns:
        ``bpp_est`` (from the likelihoods), ``psnr``, ``ms_ssim`` of the forward reconstruction, and with
        ``real``: ``bytes`` and ``bpp`` of the ``.dcae`` file (header included), ``psnr_decoded``,
        ``encode_ms``, ``decode_ms``, and ``matches_forward`` (the decoded image equals the forward pass's).
    """
    device = model.device
    x = x.to(device)
    h, w = x.shape[-2:]
    out = model(x)
    bits = sum(-torch.log2(lik).sum().item() for lik in out["likelihoods"].values())
    x_hat = out["x_hat"].clamp(0, 1)
    row = {
        "height": h,
        "width": w,
        "bpp_est": bits / (h * w),
        "psnr": psnr(x_hat, x),
        "ms_ssim": ms_ssim(x_hat, x),
    }
    if real:
        _sync(device)
        t0 = time.perf_counter()
        data = encode(model, x, lmbda=lmbda, metric=metric)
        _sync(device)
        t1 = time.perf_counter()
        decoded, _ = decode(model, data)
        _sync(device)
        t2 = time.perf_counter()
        row.update(
            {
                "bytes": len(data),
                "bpp": 8 * len(data) / (h * w),
                "psnr_decoded": psnr(decoded, x),
                "psnr_8bit": psnr(_to_8bit(decoded), _to_8bit(x)),
                "encode_ms": 1000 * (t1 - t0),
                "decode_ms": 1000 * (t2 - t1),
                "matches_forward": bool(torch.equal(decoded, x_hat)),
            }
        )
    return row


def evaluate(
    model: DCAE,
    files: Sequence[str | os.PathLike],
    *,
    real: bool = False,
    lmbda: float = 0.0,
    metric: str = "unknown",
    progress: bool = False,
) -> list[dict]:
    """:func:`evaluate_image` over files; one row per file, with its name first."""
    rows = []
    iterator: Iterable = files
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(files, desc="eval", unit="image", dynamic_ncols=True)
    for path in iterator:
        rows.append(
            {
                "file": Path(path).name,
                **evaluate_image(model, load_image(path), real=real, lmbda=lmbda, metric=metric),
            }
        )
    return rows


def summarize(rows: Sequence[dict]) -> dict:
    """Means of the numeric columns (booleans: the fraction that is true)."""
    summary: dict = {"images": len(rows)}
    for key in rows[0] if rows else []:
        values = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
        if key in ("file", "height", "width") or not values:
            continue
        finite = [float(v) for v in values if not (isinstance(v, float) and math.isnan(v))]
        summary[key] = sum(finite) / len(finite) if finite else math.nan
    return summary


def rows_to_csv(rows: Sequence[dict]) -> str:
    """CSV text of rows (columns from the union of keys, in first-seen order)."""
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def write_csv(rows: Sequence[dict], path: str | os.PathLike) -> None:
    """Write rows as CSV, atomically."""
    atomic_write_bytes(path, rows_to_csv(rows).encode())
