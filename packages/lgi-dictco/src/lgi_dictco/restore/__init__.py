"""Learned restoration of decoded images: one small CNN per source codec (research; docs/restore.md).

    from lgi_dictco.restore import restore
    from lgi_dictco.restore.model import RestoreNet
    restored = restore(model, image)             # image [3, H, W] in [0, 1]: tiled, bounded memory

Shipped weights would live in ``weights/`` as float16 state dicts described by ``weights/models.json`` (per
source: the network's sizes, the file's SHA-256, the training command and record) and
``weights/MODEL_CARD.md``, as the DCAE's are (``lgi_dictco.dcae.pretrained``, whose checksum and error types
this module uses), written by ``tools/train_restore.py ship``. None ship yet: the networks trained so far
lower PSNR on Kodak and CLIC (docs/restore.md), and :func:`load_restorer` says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from lgi_dictco.dcae.pretrained import PretrainedError, sha256_of

WEIGHTS = Path(__file__).resolve().parent / "weights"
MANIFEST = WEIGHTS / "models.json"
#: The codecs a model is trained for: their artefacts differ (smooth Gaussians against 8 × 8 blocks).
SOURCES = ("lgi", "jpeg")

__all__ = ["SOURCES", "PretrainedError", "Restorer", "list_restorers", "load_restorer", "restore"]


@dataclass(frozen=True)
class Restorer:
    """One shipped restoration model (an entry of ``weights/models.json``)."""

    source: str
    file: str
    sha256: str
    config: dict
    record: dict

    @property
    def path(self) -> Path:
        return WEIGHTS / self.file


@lru_cache(maxsize=1)
def _manifest() -> tuple[Restorer, ...]:
    if not MANIFEST.is_file():
        return ()
    data = json.loads(MANIFEST.read_text())
    return tuple(Restorer(m["source"], m["file"], m["sha256"], dict(m["config"]), dict(m.get("record", {})))
                 for m in data["models"])


def list_restorers() -> list[Restorer]:
    """The shipped restoration models (empty where this installation has none)."""
    return list(_manifest())


def load_restorer(source: str, device: str = "cpu"):
    """The shipped model for ``source`` ("lgi" or "jpeg"): checksum verified, float32, eval mode.

    Returns:
        (RestoreNet, Restorer).

    Raises:
        PretrainedError: an unknown source, a missing file or one whose SHA-256 is not the manifest's.
    """
    import torch

    from lgi_dictco.restore.model import RestoreConfig, RestoreNet

    if source not in SOURCES:
        raise PretrainedError(f"no restoration model for source {source!r}; sources: {', '.join(SOURCES)}")
    entry = next((m for m in _manifest() if m.source == source), None)
    if entry is None:
        raise PretrainedError(f"this installation ships no restoration model for {source!r}: reinstall lgi-dictco")
    if not entry.path.is_file():
        raise PretrainedError(f"the shipped weights {entry.path} are missing: reinstall lgi-dictco")
    if sha256_of(entry.path) != entry.sha256:
        raise PretrainedError(f"the shipped weights {entry.path} do not match their checksum (altered or "
                              "truncated): reinstall lgi-dictco")
    model = RestoreNet(RestoreConfig(**entry.config))
    half = torch.load(entry.path, map_location="cpu", weights_only=True)
    model.load_state_dict({k: v.float() for k, v in half.items()}, strict=True)
    return model.to(device).eval(), entry


def restore(model, image, tile: int | None = None, progress=None, level: float | None = None):
    """``lgi_dictco.restore.model.restore``: ``image`` [3, H, W] in [0, 1] → restored, tile by tile (``level``: the
    input's level, :func:`lgi_dictco.restore.model.level_of`, for a conditioned network)."""
    from lgi_dictco.restore.model import TILE
    from lgi_dictco.restore.model import restore as _restore

    return _restore(model, image, TILE if tile is None else tile, progress, level)
