"""DCAE checkpoints: atomic saves, safe loads (``weights_only``), models rebuilt from what is inside.

A checkpoint is a dict saved with :func:`torch.save`::

    {"kind": "lgi-dictco/dcae", "version": 1, "model_name": "dcae-tiny", "config": {...},
     "state_dict": {...}, "lmbda": 0.0067, "metric": "mse",
     # training state (optional): "epoch", "step", "best_loss", "optimizer", "aux_optimizer",
     # "lr_scheduler", "scaler", "rng", "train_config"}

A bare state dict, or a dict with only ``"state_dict"``, also loads: sizes are then inferred from shapes.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from lgi_dictco.dcae.config import DCAEConfig, config_from_state_dict, strip_prefix
from lgi_dictco.dcae.model import DCAE
from lgi_dictco.dcae.registry import name_of_config
from lgi_dictco.fileio import atomic_open

KIND = "lgi-dictco/dcae"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, or not a DCAE checkpoint; the message says which."""


def save_checkpoint(path: str | os.PathLike, model: DCAE, **extra) -> None:
    """Save ``model`` (config, weights) and any ``extra`` entries atomically.

    Args:
        path: destination file.
        model: the model (a DDP wrapper's ``.module``).
        **extra: e.g. ``lmbda``, ``metric``, ``epoch``, optimizer states.
    """
    state = {
        "kind": KIND,
        "version": VERSION,
        "model_name": name_of_config(model.config),
        "config": model.config.to_dict(),
        "state_dict": model.state_dict(),
        **extra,
    }
    with atomic_open(path) as f:
        torch.save(state, f)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint onto the CPU without executing code from it.

    Returns:
        A dict with at least ``"state_dict"`` (a bare state dict is wrapped).

    Raises:
        CheckpointError: missing file, unreadable file, or no DCAE weights inside.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint not found: {path} (pretrained DCAE weights cannot be downloaded "
            "here; train one with `lgi dictco train` or pass a local file)"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a checkpoint"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"cannot read checkpoint {path}: {first}") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path} is not a DCAE checkpoint (it holds a {type(obj).__name__})")
    if "state_dict" not in obj:
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            obj = {"state_dict": obj}
        else:
            raise CheckpointError(f"{path} is not a DCAE checkpoint: it has no 'state_dict'")
    if obj.get("kind", KIND) != KIND:
        raise CheckpointError(f"{path} is a {obj.get('kind')!r} checkpoint, not a DCAE one")
    if int(obj.get("version", VERSION)) > VERSION:
        raise CheckpointError(
            f"{path} is a version {obj['version']} checkpoint; this lgi-dictco reads up to {VERSION}"
        )
    obj["state_dict"] = strip_prefix(obj["state_dict"])
    return obj


def model_from_checkpoint(ckpt: dict) -> DCAE:
    """Build the model a loaded checkpoint describes and load its weights (strictly)."""
    try:
        config = (
            DCAEConfig.from_dict(ckpt["config"])
            if "config" in ckpt
            else config_from_state_dict(ckpt["state_dict"])
        )
        model = DCAE(config)
        model.load_state_dict(ckpt["state_dict"])
    except (ValueError, KeyError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"the checkpoint's weights do not fit a DCAE model: {first}") from None
    return model


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[DCAE, dict]:
    """Load a checkpoint as a ready-to-code model: on ``device``, eval mode, entropy tables built.

    Returns:
        (model, checkpoint dict without the weights).
    """
    ckpt = load_checkpoint(path)
    model = model_from_checkpoint(ckpt).to(device).eval()
    model.update(force=True)
    meta = {k: v for k, v in ckpt.items() if k not in ("state_dict", "optimizer", "aux_optimizer")}
    return model, meta
