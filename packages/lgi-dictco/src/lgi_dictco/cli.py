"""``lgi dictco``: train, evaluate and run the DCAE learned image codec.

Only click is imported at module level; torch and compressai load inside the commands, so ``lgi --help``
stays fast. Errors a user can cause (a missing checkpoint, a bad image, a corrupted file, a bad flag)
end in one line and a non-zero exit status.

Multi-GPU or multi-node training: ``torchrun --nproc_per_node=8 -m lgi_dictco.cli train ...``.
"""

from __future__ import annotations

import json
import sys

import click

from lgi_dictco.clitools import (
    FORCE,
    check_count,
    check_device,
    check_input_file,
    check_suffix,
    check_torch_file,
    preflight,
    root_flags,
)

_CHECKPOINT_HELP = "Local DCAE checkpoint (.pt); pretrained weights cannot be downloaded here."
_CHECKPOINT_ENV = "LGI_DICTCO_CHECKPOINT"
#: What ``decompress -o`` can write: the format follows the extension (``lgi_dictco.dcae.io.save_image``).
# The largest image `lgi dictco compress` takes by default (--max-pixels): with dcae-tiny the peak memory
# grows by about 190 bytes a pixel over ~0.9 GB, so 2^25 pixels (33.5 MP) stay within 8 GB
# (benchmarks/bench_memory.py, results/memory.csv; larger presets need more).
COMPRESS_MAX_PIXELS = 1 << 25
_IMAGE_OUTPUTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm")


def _fail(exc: BaseException) -> click.ClickException:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if isinstance(exc, KeyError) and len(first) > 1 and first[0] == first[-1] and first[0] in "'\"":
        first = first[1:-1]  # a KeyError's message is the repr of its key
    return click.ClickException(first)


def _quiet(quiet: bool) -> bool:
    """-q given to the command or to ``lgi`` itself."""
    return quiet or root_flags()[1]


def _emit(result: dict, as_json: bool, quiet: bool, text: str) -> None:
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
    elif not quiet:
        click.echo(text)


def _device(name: str):
    """A torch device from ``--device`` (auto, cpu, cuda, cuda:N); one line for anything else."""
    import torch

    check_device(name, auto=True)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _check_checkpoint(checkpoint: str) -> None:
    """The checkpoint exists and is a file torch.save wrote, before any other work (no torch needed)."""
    from pathlib import Path

    if Path(checkpoint).is_dir():
        raise click.ClickException(f"--checkpoint {checkpoint} is a folder; give one DCAE checkpoint (.pt) file")
    if Path(checkpoint).is_file():  # a missing one is load_model's message (it says where weights come from)
        check_torch_file(checkpoint, "a DCAE checkpoint (.pt)", "--checkpoint")


def _load(checkpoint: str, device_name: str):
    from lgi_dictco.dcae.checkpoint import CheckpointError, load_model

    _check_checkpoint(checkpoint)
    try:
        return load_model(checkpoint, _device(device_name))
    except CheckpointError as exc:
        raise _fail(exc) from None


def _load_shipped(quality: int, device_name: str):
    """A shipped model (checksum verified) as (model, meta) like :func:`_load`."""
    from lgi_dictco.dcae.pretrained import PretrainedError, load_pretrained

    try:
        model, entry = load_pretrained(quality, _device(device_name))
    except PretrainedError as exc:
        raise _fail(exc) from None
    return model, {"model_name": f"{entry.preset} q{entry.quality}", "lmbda": entry.lmbda, "metric": "mse"}


def _checkpoint_option(required: bool = True):
    return click.option(
        "--checkpoint",
        "checkpoint",
        type=click.Path(),
        required=required,
        envvar=_CHECKPOINT_ENV,
        show_envvar=True,
        help=_CHECKPOINT_HELP,
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def dictco() -> None:
    """DCAE learned image codec (dictionary-based entropy model, CVPR 2025).

    Train models, evaluate them, compress images to .dcae files and decompress them.
    """


@dictco.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option("-q", "--quiet", is_flag=True, help="Only the list (this command shows no progress).")
def models(as_json: bool, quiet: bool) -> None:
    """List the shipped models (quality levels, their rate on Kodak) and the presets (sizes, ids)."""
    import torch

    from lgi_dictco.dcae.pretrained import DEFAULT_QUALITY, list_pretrained
    from lgi_dictco.dcae.registry import build_model, list_models, model_id

    rows = []
    for name in list_models():
        # On the meta device: shapes without storage or initialization (the paper presets hold 119 M
        # parameters; allocating and initializing them took seconds to minutes just to count them).
        with torch.device("meta"):
            model = build_model(name)
        rows.append(
            {
                "name": name,
                "id": model_id(name),
                "parameters": sum(p.numel() for p in model.parameters()),
                "experts": model.config.num_experts,
            }
        )
    shipped = [
        {"quality": m.quality, "preset": m.preset, "lambda": m.lmbda, "steps": m.steps, "file": m.file,
         "fingerprint": f"{m.fingerprint:08x}", "default": m.quality == DEFAULT_QUALITY, "kodak": m.kodak}
        for m in list_pretrained()
    ]
    lines = ["shipped weights (lgi dictco compress IMAGE --quality N; rate and PSNR: means on the 24 Kodak images):"]
    for m in shipped:
        k = m["kodak"]
        figures = f"{k['bpp']:.3f} bpp, {k['psnr']:.2f} dB" if k else "not measured"
        lines.append(f"  q{m['quality']}  {m['preset']}  λ={m['lambda']:<7g} {figures}, {m['steps']} training steps"
                     + ("  (default)" if m["default"] else ""))
    if not shipped:
        lines.append("  none in this installation")
    lines.append("presets (lgi dictco train --model NAME):")
    lines += [
        f"{r['id']:>3}  {r['name']:<16} {r['parameters'] / 1e6:8.2f} M parameters"
        + (f", {r['experts']} experts" if r["experts"] else "")
        for r in rows
    ]
    _emit({"shipped": shipped, "models": rows}, as_json, False, "\n".join(lines))


@dictco.command()
@click.option("--data", required=True, type=click.Path(exists=True), help="Folder of training images.")
@click.option("--val-data", type=click.Path(exists=True), help="Folder of validation images (centred crops).")
@click.option(
    "--lambda",
    "lmbda",
    type=float,
    default=0.0067,
    show_default=True,
    help="Rate-distortion trade-off λ (MSE: 0.0018 … 0.0483).",
)
@click.option("--metric", type=click.Choice(["mse", "ms-ssim"]), default="mse", show_default=True)
@click.option(
    "--model", "model_name", default="dcae-paper", show_default=True, help="Preset (see `lgi dictco models`)."
)
@click.option(
    "-o",
    "--output",
    default="runs/dcae",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for last.pt, best.pt and the CSV logs.",
)
@click.option("--epochs", type=int, default=50, show_default=True)
@click.option("--max-steps", type=int, help="Stop after this many steps (short runs).")
@click.option("--batch-size", type=int, default=8, show_default=True, help="Per process.")
@click.option("--patch-size", type=int, default=256, show_default=True)
@click.option("--repeats", type=int, default=1, show_default=True, help="Crops per image per epoch.")
@click.option("--lr", type=float, default=1e-4, show_default=True)
@click.option("--aux-lr", type=float, default=1e-3, show_default=True)
@click.option("--milestones", default="40,45", show_default=True, help="Epochs after which lr ×= gamma.")
@click.option("--gamma", type=float, default=0.1, show_default=True)
@click.option("--clip", type=float, default=1.0, show_default=True, help="Gradient-norm clipping (0: off).")
@click.option("--workers", type=int, default=2, show_default=True, help="Data-loading processes.")
@click.option("--threads", type=int, help="CPU threads for torch.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--amp/--no-amp", default=True, show_default=True, help="Mixed precision (CUDA only).")
@click.option("--resume", help="Checkpoint to continue from, or 'auto' for OUTPUT/last.pt.")
@click.option("--init", "init", help="Start from this checkpoint's weights (another λ): fresh optimizer and schedule.")
@click.option("--hflip", is_flag=True, help="Mirror half of the training crops left-right.")
@click.option("--scale-min", type=click.FloatRange(0, 1, min_open=True), default=1.0, show_default=True,
              help="Scale augmentation: crops of patch/s pixels shrunk to the patch, s in [scale-min, 1] (1: off).")
@click.option("--log-every", type=int, default=10, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary at the end (progress stays on stderr).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def train(
    data,
    val_data,
    lmbda,
    metric,
    model_name,
    output,
    epochs,
    max_steps,
    batch_size,
    patch_size,
    repeats,
    lr,
    aux_lr,
    milestones,
    gamma,
    clip,
    workers,
    threads,
    seed,
    device,
    amp,
    resume,
    init,
    hflip,
    scale_min,
    log_every,
    as_json,
    quiet,
) -> None:
    """Train a DCAE model on random crops of an image folder (under torchrun: DDP)."""
    quiet = _quiet(quiet)
    for value, option in ((epochs, "--epochs"), (max_steps, "--max-steps"), (batch_size, "--batch-size"),
                          (patch_size, "--patch-size"), (repeats, "--repeats"), (log_every, "--log-every"),
                          (threads, "--threads")):
        check_count(value, option)
    check_count(workers, "--workers", 0)
    check_device(device, auto=True)
    if resume not in (None, "auto"):
        check_input_file(resume, "checkpoint", "--resume")
        check_torch_file(resume, "a DCAE checkpoint (.pt)", "--resume")
    if init is not None:
        check_input_file(init, "checkpoint", "--init")
        check_torch_file(init, "a DCAE checkpoint (.pt)", "--init")
    from lgi_dictco.dcae.checkpoint import CheckpointError
    from lgi_dictco.dcae.registry import get_config
    from lgi_dictco.dcae.train import TrainConfig
    from lgi_dictco.dcae.train import train as run

    try:
        get_config(model_name)
        steps = tuple(int(m) for m in milestones.split(",") if m.strip())
    except KeyError as exc:
        raise click.BadParameter(_fail(exc).message, param_hint="--model") from None
    except ValueError:
        raise click.BadParameter(
            f"comma-separated epochs expected, got {milestones!r}", param_hint="--milestones"
        ) from None
    try:
        cfg = TrainConfig(
            data=data,
            output=output,
            model=model_name,
            lmbda=lmbda,
            metric=metric,
            epochs=epochs,
            max_steps=max_steps,
            batch_size=batch_size,
            patch_size=patch_size,
            repeats=repeats,
            learning_rate=lr,
            aux_learning_rate=aux_lr,
            milestones=steps,
            gamma=gamma,
            clip_max_norm=clip,
            val_data=val_data,
            num_workers=workers,
            seed=seed,
            device=device,
            amp=amp,
            resume=resume,
            init=init,
            hflip=hflip,
            scale_min=scale_min,
            log_every=log_every,
            threads=threads,
            progress=not quiet,
        )
        summary = run(cfg)
    except (CheckpointError, ValueError, FileNotFoundError) as exc:
        raise _fail(exc) from None
    summary.pop("model")
    _emit(
        summary,
        as_json,
        quiet,
        f"trained {summary['steps']} steps ({summary['epochs_done']} epochs); "
        f"best loss {summary['best_loss']:.4f}; checkpoints {summary['last']}, {summary['best']}",
    )


@dictco.command(name="eval")
@_checkpoint_option()
@click.option("--data", required=True, type=click.Path(exists=True), help="Image folder or a single image.")
@click.option("--real", is_flag=True, help="Also code real .dcae bitstreams: file size, encode/decode times.")
@click.option("-o", "--output", type=click.Path(), help="Write per-image rows as CSV here (.csv).")
@click.option("--limit", type=int, help="Evaluate only the first N images.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--threads", type=int, help="CPU threads for torch.")
@click.option("--json", "as_json", is_flag=True, help="Print rows and means as JSON (progress stays on stderr).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar; only the results.")
def evaluate(checkpoint, data, real, output, limit, device, threads, as_json, quiet) -> None:
    """PSNR, MS-SSIM and bits per pixel of a checkpoint on an image folder (CSV out)."""
    quiet = _quiet(quiet)
    check_count(limit, "--limit")
    check_count(threads, "--threads")
    if output is not None:
        check_suffix(output, (".csv",), "CSV rows")
        preflight(output)
    check_device(device, auto=True)
    _check_checkpoint(checkpoint)
    import torch

    from lgi_dictco.dcae.evaluate import evaluate as run
    from lgi_dictco.dcae.evaluate import rows_to_csv, summarize, write_csv
    from lgi_dictco.dcae.io import list_images

    if threads:
        torch.set_num_threads(threads)
    model, meta = _load(checkpoint, device)
    try:
        files = list_images(data)[:limit] if limit else list_images(data)
        rows = run(
            model,
            files,
            real=real,
            lmbda=float(meta.get("lmbda", 0.0)),
            metric=str(meta.get("metric", "unknown")),
            progress=not quiet,  # on stderr: --json output on stdout stays clean
        )
    except (FileNotFoundError, ValueError) as exc:
        raise _fail(exc) from None
    if output:
        write_csv(rows, output)
    summary = summarize(rows)
    text = (
        rows_to_csv(rows) + "mean: " + ", ".join(f"{k}={v:.4g}" for k, v in summary.items() if k != "images")
    )
    _emit({"rows": rows, "mean": summary, "csv": output}, as_json, False, text)  # results print even with -q


@dictco.command()
@click.argument("image", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(), help="The .dcae file to write.")
@click.option("--quality", type=int, default=None,
              help="A shipped model: 1 (smallest file) … N (best quality); see `lgi dictco models`. "
              "The default when no --checkpoint is given.")
@click.option("--checkpoint", "checkpoint", type=click.Path(), envvar=_CHECKPOINT_ENV, show_envvar=True,
              help="Your own DCAE checkpoint (.pt) instead of the shipped weights.")
@click.option(
    "--device",
    default="cpu",
    show_default=True,
    help="Decode on the same kind of device: CPU and GPU arithmetic differ.",
)
@click.option("--max-pixels", type=click.IntRange(min=1), default=COMPRESS_MAX_PIXELS, show_default=True,
              help="Refuse larger images, from their header (the default keeps dcae-tiny within 8 GB).")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success.")
@FORCE
def compress(image, output, quality, checkpoint, device, max_pixels, as_json, quiet, force) -> None:
    """Code IMAGE into a .dcae file, with a shipped model (--quality) or your own (--checkpoint)."""
    from lgi_dictco.dcae.pretrained import DEFAULT_QUALITY, PretrainedError, get

    quiet = _quiet(quiet)
    check_input_file(image, "image")
    check_suffix(output, (".dcae",), "a .dcae file")
    check_device(device, auto=True)
    if checkpoint is not None and quality is not None:
        raise click.UsageError("give --quality (a shipped model) or --checkpoint (your own), not both")
    if checkpoint is not None:
        _check_checkpoint(checkpoint)
    else:
        quality = DEFAULT_QUALITY if quality is None else quality
        try:
            get(quality)
        except PretrainedError as exc:
            raise click.BadParameter(str(exc), param_hint="--quality") from None
    from lgi_dictco.dcae.codec import encode
    from lgi_dictco.dcae.io import load_image
    from lgi_dictco.fileio import atomic_write_bytes

    preflight(output, force)
    try:
        x = load_image(image, max_pixels)
    except (FileNotFoundError, ValueError) as exc:
        raise _fail(exc) from None
    model, meta = _load(checkpoint, device) if checkpoint is not None else _load_shipped(quality, device)
    metric = str(meta.get("metric", "unknown"))
    data = encode(model, x, lmbda=float(meta.get("lmbda", 0.0)), metric=metric if metric else "unknown")
    atomic_write_bytes(output, data, force=force)
    h, w = x.shape[-2:]
    result = {
        "input": image,
        "output": output,
        "height": h,
        "width": w,
        "bytes": len(data),
        "bpp": 8 * len(data) / (h * w),
        "model": meta.get("model_name", "custom"),
    }
    _emit(result, as_json, quiet, f"{image} -> {output}: {len(data)} bytes, {result['bpp']:.4f} bpp")


@dictco.command()
@click.argument("file", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(),
              help="Image to write; the format follows the extension (.png, .jpg, .webp, ...).")
@click.option("--checkpoint", "checkpoint", type=click.Path(), envvar=_CHECKPOINT_ENV, show_envvar=True,
              help="The checkpoint that coded FILE, if it was not a shipped model (those are found by the "
              "weights fingerprint in the file's header).")
@click.option("--device", default="cpu", show_default=True, help="The kind of device that encoded the file.")
@click.option("--max-pixels", type=int, default=None, help="Refuse larger images (default 2**28).")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success.")
@FORCE
def decompress(file, output, checkpoint, device, max_pixels, as_json, quiet, force) -> None:
    """Decode a .dcae FILE into an image."""
    from pathlib import Path

    from lgi_dictco.dcae.format import MAX_PIXELS, check_file
    from lgi_dictco.errors import LgiFormatError

    quiet = _quiet(quiet)
    path = Path(file)
    if path.is_dir():
        check_input_file(path, ".dcae")
    if not path.is_file():
        raise click.ClickException(f"file not found: {file}")
    check_suffix(output, _IMAGE_OUTPUTS, "an image in the format its extension names")
    check_count(max_pixels, "--max-pixels")
    check_device(device, auto=True)
    if checkpoint is not None:
        _check_checkpoint(checkpoint)
    data = path.read_bytes()
    preflight(output, force)
    try:  # the file's own checks first: a forged file is refused before torch, compressai and the model load
        header, _, _ = check_file(data, max_pixels=max_pixels or MAX_PIXELS)
    except LgiFormatError as exc:
        raise click.ClickException(f"{file}: {exc}") from None
    if checkpoint is not None:
        model, _ = _load(checkpoint, device)
    else:
        from lgi_dictco.dcae.pretrained import find_by_fingerprint

        shipped = find_by_fingerprint(header.fingerprint)
        if shipped is None:
            raise click.ClickException(
                f"{file} was coded with weights that lgi-dictco does not ship (fingerprint "
                f"{header.fingerprint:08x}): give the checkpoint that coded it with --checkpoint"
            )
        model, _ = _load_shipped(shipped.quality, device)
    from lgi_dictco.dcae.codec import decode
    from lgi_dictco.dcae.io import save_image

    try:
        image, header = decode(model, data, max_pixels=max_pixels or MAX_PIXELS)
    except LgiFormatError as exc:
        raise click.ClickException(f"{file}: {exc}") from None
    try:
        save_image(image, output, force=force)
    except (ValueError, KeyError, OSError) as exc:
        raise click.ClickException(f"cannot write {output}: {exc}") from None
    result = {"input": file, "output": output, "height": header.height, "width": header.width}
    _emit(result, as_json, quiet, f"{file} -> {output}: {header.width}x{header.height}")


@dictco.command()
@click.argument("file", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option("-q", "--quiet", is_flag=True, help="Only the header (this command shows no progress).")
def info(file, as_json, quiet) -> None:
    """Show the header of a .dcae FILE (no checkpoint needed)."""
    import dataclasses
    from pathlib import Path

    from lgi_dictco.dcae.format import unpack
    from lgi_dictco.dcae.registry import MODEL_IDS
    from lgi_dictco.errors import LgiFormatError

    path = Path(file)
    if path.is_dir():
        check_input_file(path, ".dcae")
    if not path.is_file():
        raise click.ClickException(f"file not found: {file}")
    try:
        header, y, z = unpack(path.read_bytes())
    except LgiFormatError as exc:
        raise click.ClickException(f"{file}: {exc}") from None
    result = {
        **dataclasses.asdict(header),
        "model": MODEL_IDS.get(header.model_id, "unknown"),
        "y_bytes": len(y),
        "z_bytes": len(z),
    }
    text = "\n".join(f"{k:<12} {v}" for k, v in result.items())
    _emit(result, as_json, False, text)


if __name__ == "__main__":  # torchrun -m lgi_dictco.cli train ...
    sys.exit(dictco())
