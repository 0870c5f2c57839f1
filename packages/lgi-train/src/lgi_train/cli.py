"""`lgi fit` and `lgi render`. Only click is imported here; torch loads inside the commands."""

from __future__ import annotations

import json
from pathlib import Path

import click

from lgi_dictco.clitools import (
    FORCE,
    check_count,
    check_device,
    check_input_file,
    check_suffix,
    preflight,
    root_flags,
)
from lgi_train.config import PRESETS

# The largest image `lgi fit` takes by default (--max-pixels): a whole-image fit's peak memory grows by
# about 300 bytes a pixel over ~1 GB, so 2^24 pixels (16.8 MP) stay within 8 GB (benchmarks/bench_memory.py,
# results/memory.csv). `lgi encode` fits large images in tiles and takes more.
FIT_MAX_PIXELS = 1 << 24

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


def _read_checkpoint(path: Path, option: str | None = None) -> dict:
    """An lgi-train checkpoint, or one line saying what the file is instead (a .lgi, an image, junk)."""
    from lgi_dictco.clitools import check_torch_file
    from lgi_train.fit import load_checkpoint

    name = f"{option} {path}" if option else str(path)
    check_torch_file(path, "a checkpoint of `lgi fit`, e.g. RUN/checkpoints/final.pt", option)
    try:
        return load_checkpoint(path)
    except ValueError as exc:
        _fail(f"{option + ' ' if option else ''}{exc}")
    except Exception as exc:  # noqa: BLE001 - torch.load's unpickling and zip errors: the file is not one
        first = (str(exc).strip().splitlines() or [""])[0].split(". ")[0]  # torch's first sentence
        _fail(f"{name} is not a checkpoint of `lgi fit`: torch cannot read it ({type(exc).__name__}: {first})")
    raise AssertionError("unreachable")


@click.command()
@click.argument("image", type=click.Path(path_type=Path))
@click.option("-o", "--output", "run_dir", type=click.Path(path_type=Path), required=True,
              help="Run folder (created): config, metrics, renders, checkpoints.")
@click.option("--preset", type=click.Choice(list(PRESETS)), default="default", show_default=True,
              help="Starting configuration: default (the best measured on Kodak, docs/training.md) or image-gs "
                   "(Image-GS as published: top-k, L1 + SSIM, plateau schedule). --config and flags override it.")
@click.option("--config", "config_file", type=click.Path(path_type=Path),
              help="YAML config; fields it leaves out keep the preset's values; flags override it.")
@click.option("-n", "--gaussians", type=int, help="Number of Gaussians N [10000].")
@click.option("--init", type=click.Choice(["gradient", "placement", "slic", "saliency", "random"]),
              help="Initialization [gradient].")
@click.option("--steps", type=int, help="Optimization steps [2000, or sized to --max-seconds].")
@click.option("--max-seconds", type=float,
              help="Time budget in seconds; the fit stops when it is spent. With the cosine schedule (the "
                   "default) and no --steps, the step count is sized so that the schedule completes within it.")
@click.option("--schedule", type=click.Choice(["plateau", "cosine"]),
              help="Learning-rate schedule [cosine]: cosine over the step budget, or plateau (Image-GS).")
@click.option("--device", help="cpu, cuda or cuda:N [cpu].")
@click.option("--seed", type=int, help="Random seed [0].")
@click.option("--loss", type=click.Choice(["l1_ssim", "l1", "l2", "ms_ssim", "l1_lpips"]), help="[l2]")
@click.option("--mode", type=click.Choice(["topk", "sum", "topk-hard"]),
              help="Blend mode [sum]; topk is Image-GS's; topk-hard is lgi-gsplat2d 0.1's top-k (hard 3-sigma cutoff).")
@click.option("--topk", type=int, help="K of top-k blending [10].")
@click.option("--backend", type=click.Choice(["auto", "cpu", "cuda", "torch"]), help="Rasterizer backend [auto].")
@click.option("--progressive/--no-progressive", default=None, help="Error-guided growth [on].")
@click.option("--coarse-to-fine/--no-coarse-to-fine", default=None, help="Fit a half-size image for the first half of the steps [on].")
@click.option("--qat/--no-qat", default=None, help="Quantization-aware training at the end [off].")
@click.option("--bits-position", type=int)
@click.option("--bits-scale", type=int)
@click.option("--bits-rotation", type=int)
@click.option("--bits-color", type=int)
@click.option("--checkpoint-every", type=int, help="Write a checkpoint every M steps [only at the end].")
@click.option("--saliency-weights", help="TorchScript saliency model for --init saliency.")
@click.option("--resume", type=click.Path(path_type=Path), help="Checkpoint to continue from.")
@click.option("--no-pictures", is_flag=True, help="Skip the Gaussian and growth pictures.")
@click.option("--max-pixels", type=click.IntRange(min=1), default=FIT_MAX_PIXELS, show_default=True,
              help="Refuse larger images, from their header (the default keeps the fit within 8 GB).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout (progress stays on stderr).")
@click.option("-q", "--quiet", is_flag=True, help="No progress; only errors and the result.")
def fit(image, run_dir, preset, config_file, resume, no_pictures, max_pixels, as_json, quiet, **flags):
    """Fit Gaussians to IMAGE (Image-GS style) and write a run folder.

    Progress goes to stderr: one bar over the whole run (stage, ETA) on a terminal, a line per stage
    and every 10 s elsewhere; -q turns it off.
    """
    from lgi_dictco.fileio import OutputError
    from lgi_train.config import ConfigError, FitConfig
    from lgi_train.runs import ImageError, load_target

    quiet = quiet or root_flags()[1]
    # Every check that needs no work runs first: a mistake costs no time and writes nothing.
    check_input_file(image, "image")
    if run_dir.exists() and not run_dir.is_dir():
        _fail(f"-o {run_dir} is a file; give a folder for the run (it is created)")
    if config_file is not None:
        check_input_file(config_file, "YAML config", "--config")
    if resume is not None:
        check_input_file(resume, "checkpoint", "--resume")
    check_count(flags.get("steps"), "--steps")
    check_count(flags.get("checkpoint_every"), "--checkpoint-every")
    if flags.get("device") is not None:
        check_device(flags["device"])
    ckpt = _read_checkpoint(resume, "--resume") if resume is not None else None
    # The folder must be writable; a read-only file inside it is refused when it is written (no --force).
    preflight(run_dir / "summary.json", force=True)
    try:
        cfg = FitConfig.preset(preset)
        cfg = FitConfig.load(config_file, base=cfg) if config_file else cfg
        if ckpt is not None and config_file is None:
            cfg = FitConfig.from_dict(ckpt["config"])
        changes = {_FLAG_FIELDS[k]: v for k, v in flags.items() if v is not None}
        cfg = cfg.replace(**changes)
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    if cfg.steps < 1:
        _fail(f"steps must be >= 1, got {cfg.steps} (from {config_file or 'the checkpoint'})")
    check_device(cfg.device)
    try:  # a bad image is one line before any progress is shown
        target = load_target(image, max_pixels)
    except ImageError as exc:
        _fail(str(exc))
    if cfg.schedule == "cosine" and cfg.max_seconds and flags.get("steps") is None and resume is None:
        cfg = _size_to_budget(target, cfg, quiet)
    try:
        _fit_with_progress(image, run_dir, cfg, resume, not no_pictures, quiet, target=target)
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


def _size_to_budget(target, cfg, quiet):
    """A cosine schedule only decays if the fit reaches its last step: size the steps to the time budget."""
    from lgi_train.fit import steps_for_budget

    steps, probe = steps_for_budget(target, cfg, cfg.max_seconds)
    if not quiet:
        click.echo(f"cosine schedule sized to {steps} steps for {cfg.max_seconds:g} s (timing probe {probe:.1f} s)",
                   err=True)
    return cfg.replace(steps=steps, max_seconds=max(1e-3, cfg.max_seconds - probe))


#: Expected shares of a fit's time, for the overall bar (measured on small and Kodak-sized fits: the
#: steps dominate; writing the pictures is a few percent).
FIT_STAGES = (("load", 0.02), ("init", 0.03), ("fit", 0.90), ("write", 0.05))


def _fit_with_progress(image, run_dir, cfg, resume, pictures, quiet, stream=None, target=None):
    """Run the fit under one overall progress display (stderr; nothing when ``quiet``)."""
    from lgi_dictco.progress import StageProgress
    from lgi_train.runs import fit_image

    progress = StageProgress("lgi fit", FIT_STAGES, quiet=quiet, stream=stream)

    def on_step(info):
        done = info.step / cfg.steps
        if cfg.max_seconds:  # a time budget can end the fit before its last step
            done = max(done, info.seconds / cfg.max_seconds)
        phase = "" if info.stage in ("fine", "final") else f"{info.stage}, "
        progress.update("fit", done, f"{phase}step {info.step}/{cfg.steps}, N {info.num_gaussians}, "
                                     f"{info.psnr:.2f} dB")

    with progress:
        result = fit_image(image, run_dir, cfg, resume=resume, on_step=on_step, pictures=pictures,
                           on_stage=progress.update, target=target)
        progress.finish(f"lgi fit: done in {progress.elapsed:.1f} s ({result.steps} steps, {result.stop_reason})")
    return result


@click.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Output PNG.")
@click.option("--scale", type=float, default=None, help="Output size relative to the fitted image [1.0].")
@click.option("--width", type=int, default=None, help="Output width in pixels (height follows the aspect).")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--backend", type=click.Choice(["auto", "cpu", "cuda", "torch"]), default="auto", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success.")
@FORCE
def render(source, output, scale, width, device, backend, as_json, quiet, force):
    """Render a fitted set (a run folder or a checkpoint) at any resolution.

    A grayscale fit renders as a grayscale PNG.
    """
    quiet = quiet or root_flags()[1]
    if source.is_dir():
        ckpt_path = source / "checkpoints" / "final.pt"
        if not ckpt_path.is_file():
            _fail(f"no checkpoint at {ckpt_path}: {source} is a folder but not a run folder of `lgi fit` "
                  "(give a run folder or a .pt checkpoint)")
    else:
        ckpt_path = check_input_file(source, "checkpoint")
    check_suffix(output, (".png",), "a PNG image")
    if scale is not None and width is not None:
        _fail("give --scale or --width, not both")
    if scale is not None and not (scale > 0 and scale < float("inf")):
        _fail(f"--scale must be > 0 and finite, got {scale}")
    check_count(width, "--width")
    check_device(device)
    ckpt = _read_checkpoint(ckpt_path)  # before the output check: a wrong input is named first
    preflight(output, force)
    import torch

    from lgi_train.fit import model_from_checkpoint
    from lgi_train.runs import save_png

    _, h, w = ckpt["image_size"]
    if width is not None:
        scale = width / w
    scale = 1.0 if scale is None else scale
    out_h, out_w = max(1, round(h * scale)), max(1, round(w * scale))
    if out_h * out_w > 1 << 28:
        asked = f"--width {width}" if width is not None else f"--scale {scale:g}"
        _fail(f"{asked} of a {w}x{h} fit gives {out_w}x{out_h} pixels, more than the limit of {1 << 28} (2**28)")
    model = model_from_checkpoint(ckpt_path, backend=backend, device=device)
    gray = ckpt.get("channels", 3) == 1
    with torch.no_grad():
        img = model.render(out_h, out_w)
    save_png(img, output, force=force, gray=gray)
    result = {"input": str(source), "output": str(output), "width": out_w, "height": out_h,
              "channels": 1 if gray else 3, "num_gaussians": model.num_gaussians}
    if as_json:
        click.echo(json.dumps(result, indent=2))
    elif not quiet:
        click.echo(f"{output}: {out_w}x{out_h}{' grayscale' if gray else ''} from {model.num_gaussians} Gaussians")
