"""`lgi demo`: encode and decode the built-in sample, compare with JPEG at the same size."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import click

SAMPLE = Path(__file__).with_name("data") / "sample.png"  # lgi.api.SAMPLE (click only at import here)


def jpeg_at_most(image_u8, max_bytes: int) -> tuple[bytes, int]:
    """The highest-quality baseline JPEG (Pillow, 4:2:0) no larger than ``max_bytes``; (bytes, quality)."""
    from lgi.peers import peer_at_most

    return peer_at_most(image_u8, max_bytes, "jpeg")


def side_by_side(panels: list[tuple[str, object]], path: Path) -> None:
    """One PNG with labelled panels (uint8 [H, W, 3] arrays) in a row."""
    from PIL import Image, ImageDraw

    h, w = panels[0][1].shape[:2]
    label_h = 22
    canvas = Image.new("RGB", (w * len(panels), h + label_h), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (label, arr) in enumerate(panels):
        canvas.paste(Image.fromarray(arr), (i * w, label_h))
        draw.text((i * w + 6, 5), label, fill="black")
    canvas.save(path)


@click.command()
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=Path("lgi-demo"),
              show_default=True, help="Folder for sample.lgi, decoded.png and comparison.png.")
@click.option("--image", type=click.Path(dir_okay=False, path_type=Path), help="Another image instead of the sample.")
@click.option("--bpp", type=float, default=0.5, show_default=True, help="Target bits per pixel.")
@click.option("--steps", type=int, help="Fitting steps (fewer: faster, lower quality).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.option("-q", "--quiet", is_flag=True)
def demo(output, image, bpp, steps, device, as_json, quiet):
    """Encode and decode a sample image; compare with JPEG at the same size."""
    import numpy as np

    from lgi.api import encode_details
    from lgi.codec_cli import _progress, api_failure, atomic_write, research_tuning
    from lgi.decoding import decode, to_png_bytes
    from lgi.errors import LgiError

    src = image or SAMPLE
    if not src.is_file():
        raise click.ClickException(f"image not found: {src}")
    from lgi_train.metrics import ms_ssim, psnr
    from lgi_train.runs import ImageError, load_target, to_uint8

    try:
        target = load_target(src)
    except ImageError as exc:
        raise click.ClickException(str(exc)) from None
    progress, on_stage = _progress("lgi demo: encode", quiet)
    try:
        with progress:
            enc = encode_details(target, bpp=bpp, device=device, progress=on_stage,
                                 tuning=research_tuning("default", steps), max_pixels=target[0].numel())
    except LgiError as exc:
        raise api_failure(exc) from None
    output.mkdir(parents=True, exist_ok=True)
    atomic_write(output / "sample.lgi", enc.data)
    t0 = time.perf_counter()
    decoded = decode(enc.data, device=device)
    decode_s = time.perf_counter() - t0
    atomic_write(output / "decoded.png", to_png_bytes(decoded.image))

    import torch
    from PIL import Image

    orig = to_uint8(target)
    ours = np.asarray(Image.open(io.BytesIO(to_png_bytes(decoded.image))).convert("RGB"))
    jpeg, quality = jpeg_at_most(orig, len(enc.data))
    jpeg_img = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
    atomic_write(output / "jpeg_same_size.jpg", jpeg)

    def metrics(arr):
        x = torch.from_numpy(np.array(arr)).permute(2, 0, 1).float() / 255
        out = {"psnr": psnr(x, target)}
        if min(x.shape[1:]) > 160:
            out["ms_ssim"] = ms_ssim(x, target)
        return out

    h, w = orig.shape[:2]
    m_lgi, m_jpg = metrics(ours), metrics(jpeg_img)
    report = {"image": str(src), "width": w, "height": h,
              "lgi": {"bytes": len(enc.data), "bpp": len(enc.data) * 8 / (w * h), **m_lgi,
                      "gaussians": enc.gaussians, "encode_seconds": round(enc.seconds, 2),
                      "decode_seconds": round(decode_s, 4)},
              "jpeg": {"bytes": len(jpeg), "bpp": len(jpeg) * 8 / (w * h), "quality": quality, **m_jpg}}
    side_by_side([("original", orig),
                  (f"LGI {report['lgi']['bpp']:.3f} bpp, {m_lgi['psnr']:.2f} dB", ours),
                  (f"JPEG q{quality} {report['jpeg']['bpp']:.3f} bpp, {m_jpg['psnr']:.2f} dB", jpeg_img)],
                 output / "comparison.png")
    (output / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    lg, jp = report["lgi"], report["jpeg"]
    click.echo(f"LGI : {lg['bytes']:6d} bytes  {lg['bpp']:.3f} bpp  PSNR {lg['psnr']:.2f} dB  "
               f"MS-SSIM {lg.get('ms_ssim', float('nan')):.4f}  ({lg['gaussians']} Gaussians; encode "
               f"{lg['encode_seconds']:.1f} s, decode {lg['decode_seconds'] * 1000:.0f} ms)")
    click.echo(f"JPEG: {jp['bytes']:6d} bytes  {jp['bpp']:.3f} bpp  PSNR {jp['psnr']:.2f} dB  "
               f"MS-SSIM {jp.get('ms_ssim', float('nan')):.4f}  (Pillow quality {jp['quality']})")
    click.echo(f"wrote {output}/comparison.png, sample.lgi, decoded.png")
