"""The DCAE weights shipped with lgi-dictco: one model per quality level, found by level or by fingerprint.

The weights live in this package's ``weights/`` folder as state dicts with float16 parameters
(``dcae-small-q<N>.pt``), described by ``weights/models.json``: per level the λ it was trained for, the file's SHA-256, the
fingerprint of the float32 weights it loads as (the one a ``.dcae`` header records), the exact training
commands, and its measured rate and PSNR on Kodak. ``weights/MODEL_CARD.md`` says the same for people.

A ``.dcae`` file written with a shipped model names that model through its header's fingerprint, so
decoding needs no checkpoint argument: :func:`find_by_fingerprint`.

Reading ``models.json`` needs no torch; loading a model does.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from lgi_dictco.dcae.model import DCAE

WEIGHTS = Path(__file__).resolve().parent / "weights"
MANIFEST = WEIGHTS / "models.json"
#: The level `lgi dictco compress` uses when given neither --quality nor --checkpoint: the one that beats
#: JPEG most clearly at equal size on Kodak (benchmarks/results/dictco_rd_shipped_summary.md).
DEFAULT_QUALITY = 2


class PretrainedError(ValueError):
    """The shipped weights are missing, altered, or have no model for what was asked; the message says which."""


@dataclass(frozen=True)
class Pretrained:
    """One shipped model.

    Attributes:
        quality: level, 1 (smallest files) … N (best quality).
        preset: the :mod:`~lgi_dictco.dcae.registry` preset of its sizes.
        lmbda: λ of its training loss ``λ·255²·MSE + bpp``.
        file: weights file name inside ``weights/``.
        sha256: SHA-256 of that file.
        fingerprint: :meth:`DCAE.fingerprint` of the loaded (float32) weights.
        steps: training steps behind it.
        kodak: measured means on the 24 Kodak images (``bpp``, ``psnr``, ``ms_ssim``), if measured.
    """

    quality: int
    preset: str
    lmbda: float
    file: str
    sha256: str
    fingerprint: int
    steps: int
    kodak: dict

    @property
    def path(self) -> Path:
        return WEIGHTS / self.file


@lru_cache(maxsize=1)
def _manifest() -> tuple[Pretrained, ...]:
    if not MANIFEST.is_file():
        return ()
    data = json.loads(MANIFEST.read_text())
    return tuple(
        Pretrained(
            quality=int(m["quality"]),
            preset=str(m["preset"]),
            lmbda=float(m["lmbda"]),
            file=str(m["file"]),
            sha256=str(m["sha256"]),
            fingerprint=int(m["fingerprint"]),
            steps=int(m["steps"]),
            kodak=dict(m.get("kodak", {})),
        )
        for m in sorted(data["models"], key=lambda m: int(m["quality"]))
    )


def list_pretrained() -> list[Pretrained]:
    """The shipped models, by quality level (empty if this installation has none)."""
    return list(_manifest())


def qualities() -> list[int]:
    """The quality levels that have a shipped model."""
    return [m.quality for m in _manifest()]


def get(quality: int) -> Pretrained:
    """The shipped model of ``quality``.

    Raises:
        PretrainedError: no model of that level (the message lists the levels there are).
    """
    for m in _manifest():
        if m.quality == quality:
            return m
    levels = ", ".join(map(str, qualities())) or "none: this installation ships no DCAE weights"
    raise PretrainedError(f"no shipped DCAE model of quality {quality}; levels: {levels}")


def find_by_fingerprint(fingerprint: int) -> Pretrained | None:
    """The shipped model whose float32 weights have ``fingerprint`` (a ``.dcae`` header's), or None."""
    for m in _manifest():
        if m.fingerprint == fingerprint:
            return m
    return None


def to_half_state_dict(model: DCAE) -> dict[str, torch.Tensor]:
    """The state dict to ship: parameters as float16; buffers (the entropy models' bounds and tables)
    as they are, since float16 would turn the 1e-9 likelihood floor into 0."""
    import torch

    params = {name for name, _ in model.named_parameters()}
    return {
        k: (v.detach().to("cpu", torch.float16) if k in params else v.detach().cpu()).contiguous()
        for k, v in model.state_dict().items()
    }


def sha256_of(path: str | Path) -> str:
    """SHA-256 of a file, hex."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_pretrained(quality: int, device: str | torch.device = "cpu") -> tuple[DCAE, Pretrained]:
    """Load a shipped model ready to code: checksum verified, float32, on ``device``, eval mode, updated.

    Raises:
        PretrainedError: no such level, a missing file, or a file whose SHA-256 is not the manifest's.
    """
    import torch

    from lgi_dictco.dcae.checkpoint import CheckpointError, model_from_checkpoint
    from lgi_dictco.dcae.registry import get_config

    entry = get(quality)
    if not entry.path.is_file():
        raise PretrainedError(f"the shipped weights {entry.path} are missing: reinstall lgi-dictco")
    if sha256_of(entry.path) != entry.sha256:
        raise PretrainedError(
            f"the shipped weights {entry.path} do not match their checksum (altered or truncated): "
            "reinstall lgi-dictco"
        )
    half = torch.load(entry.path, map_location="cpu", weights_only=True)
    state = {k: v.float() if v.is_floating_point() else v for k, v in half.items()}
    try:  # the preset's sizes, loaded strictly: weights of other sizes are refused
        model = model_from_checkpoint({"config": get_config(entry.preset).to_dict(), "state_dict": state})
    except CheckpointError as exc:
        raise PretrainedError(f"{entry.path}: {exc}") from None
    model = model.to(device).eval()
    model.update(force=True)
    return model, entry
