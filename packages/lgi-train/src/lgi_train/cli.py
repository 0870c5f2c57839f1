"""`lgi fit` and `lgi render`. Only click is imported here; torch loads inside the commands."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from lgi_dictco.clitools import FORCE, preflight

# Flags that map one-to-one onto FitConfig fields (the flag is the field name with dashes).
_FLAG_FIELDS = {
    "gaussians": "num_gaussians", "init": "init", "steps": "steps", "max_seconds": "max_seconds",
    "device": "device", "seed": "seed", "loss": "loss", "mode": "render_mode", "topk": "topk",
    "backend": "backend", "progressive": "progressive", "coarse_to_fine": "coarse_to_fine", "qat": "qat",
    "bits_position": "bits_position", "bits_scale": "bits_scale", "bits_rotation": "bits_rotation",
    "bits_color": "bits_color", "checkpoint_every": "checkpoint_every", "saliency_weights": "saliency_weights",
    "schedule": "schedule",
}


def _fail(msg: str) -> None:
    raise click.ClickException(msg)




@click.command()
@click.argument("image", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", "run_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Run folder (created): config, metrics, renders, checkpoints.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="YAML config; flags given on the command line override it.")
@click.option("-n", "--gaussians", type=int, help="Number of Gaussians N [10000].")
@click.option("--init", type=click.Choice(["gradient", "placement", "slic", "saliency", "random"]),
              help="Initialization [gradient].")
@click.option("--steps", type=int, help="Maximum optimization steps [2000].")
@click.option("--max-seconds", type=float,
              help="Time budget; the fit stops when it is spent. With --schedule cosine and no --steps, the "
                   "step count is sized so that the schedule completes within it.")
@click.option("--schedule", type=click.Choice(["plateau", "cosine"]),
              help="Learning-rate schedule [plateau]: plateau (Image-GS) or cosine over the step budget.")
@click.option("--device", help="cpu, cuda or cuda:N [cpu].")
@click.option("--seed", type=int, help="Random seed [0].")
@click.option("--loss", type=click.Choice(["l1_ssim", "l1", "l2", "ms_ssim", "l1_lpips"]), help="[l1_ssim]")
@click.option("--mode", type=click.Choice(["topk", "sum"]), help="Blend mode [topk].")
@click.option("--topk", type=int, help="K of top-k blending [10].")
@click.option("--backend", type=click.Choice(["auto", "cpu", "cuda", "torch"]), help="Rasterizer backend [auto].")
@click.option("--progressive/--no-progressive", default=None, help="Error-guided growth [on].")
@click.option("--coarse-to-fine/--no-coarse-to-fine", default=None, help="Fit a downsampled image first [off].")
@click.option("--qat/--no-qat", default=None, help="Quantization-aware training at the end [off].")
@click.option("--bits-position", type=int)
@click.option("--bits-scale", type=int)
@click.option("--bits-rotation", type=int)
@click.option("--bits-color", type=int)
@click.option("--checkpoint-every", type=int, help="Write a checkpoint every M steps [only at the end].")
@click.option("--saliency-weights", help="TorchScript saliency model for --init saliency.")
@click.option("--resume", type=click.Path(dir_okay=False, path_type=Path), help="Checkpoint to continue from.")
@click.option("--no-pictures", is_flag=True, help="Skip the Gaussian and growth pictures.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def fit(image, run_dir, config_file, resume, no_pictures, as_json, quiet, **flags):
    """Fit Gaussians to IMAGE (Image-GS style) and write a run folder."""
    from lgi_dictco.fileio import OutputError
    from lgi_train.config import ConfigError, FitConfig
    from lgi_train.runs import ImageError

    if not image.is_file():
        _fail(f"image not found: {image}")
    # The folder must be writable; a read-only file inside it is refused when it is written (no --force).
    preflight(run_dir / "summary.json", force=True)
    try:
        cfg = FitConfig.load(config_file) if config_file else FitConfig()
        if resume is not None and config_file is None:
            from lgi_train.fit import load_checkpoint

            cfg = FitConfig.from_dict(load_checkpoint(resume)["config"])
        changes = {_FLAG_FIELDS[k]: v for k, v in flags.items() if v is not None}
        cfg = cfg.replace(**changes)
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    if cfg.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            _fail(f"--device {cfg.device}: no CUDA GPU is available on this machine")
    if cfg.schedule == "cosine" and cfg.max_seconds and flags.get("steps") is None and resume is None:
        cfg = _size_to_budget(image, cfg, quiet or as_json)
    try:
        result, seconds = _fit_with_progress(image, run_dir, cfg, resume, not no_pictures, quiet or as_json)
    except (ImageError, ConfigError, ValueError, FileNotFoundError, OutputError) as exc:
        _fail(str(exc))
    summary = json.loads((run_dir / "summary.json").read_text())
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        m = summary["metrics_8bit"]
        click.echo(f"{image.name}: {summary['num_gaussians']} Gaussians, {summary['steps']} steps, "
                   f"{summary['seconds']:.1f} s ({summary['stop_reason']}); PSNR {m['psnr']:.2f} dB, "
                   f"SSIM {m['ssim']:.4f} → {run_dir}")


def _size_to_budget(image, cfg, quiet):
    """A cosine schedule only decays if the fit reaches its last step: size the steps to the time budget."""
    from lgi_train.fit import steps_for_budget
    from lgi_train.runs import ImageError, load_target

    try:
        target = load_target(image)
    except ImageError as exc:
        _fail(str(exc))
    steps, probe = steps_for_budget(target, cfg, cfg.max_seconds)
    if not quiet:
        click.echo(f"cosine schedule sized to {steps} steps for {cfg.max_seconds:g} s (timing probe {probe:.1f} s)",
                   err=True)
    return cfg.replace(steps=steps, max_seconds=max(1e-3, cfg.max_seconds - probe))


def _fit_with_progress(image, run_dir, cfg, resume, pictures, quiet):
    from lgi_train.runs import fit_image

    if quiet or not sys.stderr.isatty():
        return fit_image(image, run_dir, cfg, resume=resume, pictures=pictures), None
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("[bold]fit"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TextColumn("N={task.fields[n]} PSNR={task.fields[psnr]:.2f} dB {task.fields[rate]:.1f} it/s"),
               TimeElapsedColumn())
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task("fit", total=cfg.steps, n=0, psnr=0.0, rate=0.0)

        def on_step(info):
            rate = info.step / info.seconds if info.seconds > 0 else 0.0
            progress.update(task, completed=info.step, n=info.num_gaussians, psnr=info.psnr, rate=rate)

        return fit_image(image, run_dir, cfg, resume=resume, on_step=on_step, pictures=pictures), None


@click.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Output PNG.")
@click.option("--scale", type=float, default=None, help="Output size relative to the fitted image [1.0].")
@click.option("--width", type=int, default=None, help="Output width in pixels (height follows the aspect).")
@click.option("--device", default="cpu", show_default=True)
@click.option("--backend", type=click.Choice(["auto", "cpu", "cuda", "torch"]), default="auto", show_default=True)
@FORCE
def render(source, output, scale, width, device, backend, force):
    """Render a fitted set (a run folder or a checkpoint) at any resolution."""
    preflight(output, force)
    import torch

    from lgi_train.fit import load_checkpoint, model_from_checkpoint
    from lgi_train.runs import save_png

    ckpt_path = source / "checkpoints" / "final.pt" if source.is_dir() else source
    if not ckpt_path.is_file():
        _fail(f"no checkpoint at {ckpt_path} (give a run folder of `lgi fit` or a .pt checkpoint)")
    with open(ckpt_path, "rb") as f:
        if f.read(5) == b"\x89LGI\r":
            _fail(f"{ckpt_path} is a .lgi file: decode it with `lgi decode {ckpt_path} -o OUT.png` "
                  "(`lgi render` draws the fitted sets of `lgi fit`)")
    if scale is not None and width is not None:
        _fail("give --scale or --width, not both")
    if scale is not None and not scale > 0:
        _fail(f"--scale must be > 0, got {scale}")
    try:
        ckpt = load_checkpoint(ckpt_path)
    except ValueError as exc:
        _fail(str(exc))
    _, h, w = ckpt["image_size"]
    if width is not None:
        scale = width / w
    scale = 1.0 if scale is None else scale
    out_h, out_w = max(1, round(h * scale)), max(1, round(w * scale))
    if scale <= 0 or out_h * out_w > 1 << 28:
        _fail(f"output size {out_w}x{out_h} is out of range")
    model = model_from_checkpoint(ckpt_path, backend=backend, device=device)
    with torch.no_grad():
        img = model.render(out_h, out_w)
    save_png(img, output, force=force)
    click.echo(f"{output}: {out_w}x{out_h} from {model.num_gaussians} Gaussians")
