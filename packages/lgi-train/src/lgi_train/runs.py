"""Image files in and out, and the run folder of `lgi fit`.

A run folder holds: ``config.yaml``, ``metrics.jsonl`` / ``metrics.csv``, ``render.png`` (the final
render; grayscale when the input is), ``error.png``, ``gaussians.png`` (ellipses over the image), ``added.png`` (where growth added
Gaussians), ``summary.json``, and ``checkpoints/`` (``final.pt`` always, ``step_*.pt`` every
``checkpoint_every`` steps). Every file is written atomically.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from lgi_dictco.fileio import atomic_write_bytes
from lgi_train.config import FitConfig
from lgi_train.fit import FitResult, Fitter, StepInfo, is_grayscale, write_metrics


class ImageError(ValueError):
    """An input image cannot be read; the message names the file and the reason."""


def load_target(path: str | Path, max_pixels: int | None = None) -> torch.Tensor:
    """[3, H, W] float32 in [0, 1] from any image Pillow reads (alpha composited on white); images of
    more than ``max_pixels`` pixels (None: Pillow's guard) are refused from the header."""
    from lgi_preprocess import PreprocessError, load_image

    try:
        rgb = load_image(path, max_pixels=max_pixels)
    except PreprocessError as exc:
        raise ImageError(str(exc)) from None
    return _as_target(rgb)


def decode_target(data: bytes, name: str, max_pixels: int | None = None) -> torch.Tensor:
    """:func:`load_target` from an image file's bytes (``name`` for messages): what a batch worker gets."""
    from lgi_preprocess import PreprocessError, decode_image

    try:
        rgb = decode_image(data, name, max_pixels=max_pixels)
    except PreprocessError as exc:
        raise ImageError(str(exc)) from None
    return _as_target(rgb)


def _as_target(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1).contiguous()


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """[C, H, W] in [0, 1] → [H, W, 3] uint8 (``lgi_dictco.pixels.to_uint8``; one channel repeated)."""
    from lgi_dictco.pixels import to_uint8 as convert

    arr = convert(image)
    return np.repeat(arr, 3, axis=2) if arr.shape[2] == 1 else arr


def to_gray(image: torch.Tensor) -> torch.Tensor:
    """[C, H, W] → [1, H, W]: the mean of the channels. A fit of a gray image renders channels that
    differ by fitting noise only; their mean is the best gray estimate (not a luma weighting, which
    would favour green's noise)."""
    return image.mean(0, keepdim=True)


def save_png(image: torch.Tensor | np.ndarray, path: Path, force: bool = False, gray: bool = False) -> None:
    """Write an image as PNG atomically; ``gray``: a one-channel (mode L) PNG of the channels' mean."""
    import io

    from PIL import Image

    if gray and isinstance(image, torch.Tensor):
        from lgi_dictco.pixels import to_uint8 as convert

        arr = convert(to_gray(image.detach().clamp(0, 1)))[:, :, 0]
    elif gray:
        arr = np.asarray(image)
        arr = arr.mean(axis=2).round().astype(np.uint8) if arr.ndim == 3 else arr
    else:
        arr = to_uint8(image) if isinstance(image, torch.Tensor) else image
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue(), force=force)


def fit_image(image_path: str | Path, run_dir: str | Path, cfg: FitConfig, resume: str | Path | None = None,
              on_step: Callable[[StepInfo], None] | None = None, pictures: bool = True,
              on_stage: Callable[[str], None] | None = None, target: torch.Tensor | None = None) -> FitResult:
    """Fit one image into ``run_dir`` (created), resuming from a checkpoint if given.

    Args:
        target: ``image_path`` already loaded (:func:`load_target`), e.g. by a command that checks
            the input before it shows progress; None loads it here.
        on_step: called by the fitter every ``cfg.log_every`` steps (see :class:`Fitter`).
        on_stage: called with each stage's name as it starts: ``load`` (the image, a checkpoint),
            ``init`` (the initial Gaussians), ``fit`` (the steps; ``on_step`` follows them) and
            ``write`` (the final render, metrics and pictures).
    """
    from lgi_train.metrics import evaluate
    from lgi_train.viz import error_map, visualize_added_gaussians, visualize_gaussians

    def stage(name: str) -> None:
        if on_stage is not None:
            on_stage(name)

    run_dir = Path(run_dir)
    # Everything that can fail on bad input (image, config, checkpoint) runs before the folder exists.
    stage("load")
    target = load_target(image_path) if target is None else target
    gray = is_grayscale(target)
    torch.manual_seed(cfg.seed)
    fitter = Fitter(target, cfg, on_step=on_step, checkpoint_dir=run_dir / "checkpoints")
    if resume is not None:
        fitter.load_checkpoint(Path(resume))
    else:
        stage("init")
        fitter.setup()
    initial_xy = fitter.model.xy.detach().cpu().clone() if resume is None else None
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg.save(run_dir / "config.yaml")
    stage("fit")
    result = fitter.run()
    stage("write")
    fitter.save_checkpoint(run_dir / "checkpoints" / "final.pt")
    write_metrics(result.history, run_dir)
    with torch.no_grad():
        render = result.model.render(*target.shape[1:]).clamp(0, 1).cpu()
    if gray:  # a grayscale input gives a grayscale render, and the metrics describe that file
        render = to_gray(render).expand(3, -1, -1)
    save_png(render, run_dir / "render.png", gray=gray)
    rendered8, target8 = to_uint8(render), to_uint8(target)
    save_png(error_map(rendered8 / 255.0, target8 / 255.0), run_dir / "error.png")
    metrics = evaluate(torch.from_numpy(rendered8).permute(2, 0, 1) / 255.0,
                       torch.from_numpy(target8).permute(2, 0, 1) / 255.0, cfg.lpips_weights)
    if pictures:
        model = result.model
        visualize_gaussians(target8 / 255.0, model.xy.detach().cpu(), torch.exp(model.log_scale.detach()).cpu(),
                            model.rotation.detach().cpu(), run_dir / "gaussians.png")
        if initial_xy is not None:
            visualize_added_gaussians(target8 / 255.0, initial_xy, result.added, run_dir / "added.png")
    summary = {"image": str(image_path), "width": int(target.shape[2]), "height": int(target.shape[1]),
               "channels": 1 if gray else 3, "num_gaussians": result.model.num_gaussians, "steps": result.steps,
               "seconds": round(result.seconds, 3), "stop_reason": result.stop_reason,
               "kept_step": result.best_step if result.best_step is not None else result.steps,
               "metrics_8bit": metrics, "psnr_float": result.psnr}
    atomic_write_bytes(run_dir / "summary.json", (json.dumps(summary, indent=2) + "\n").encode())
    return result
