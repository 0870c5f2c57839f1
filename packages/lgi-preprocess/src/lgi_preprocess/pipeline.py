"""The preprocessing pipeline: every map of one image, and the file-writing side with its four modes.

Files for an input ``<stem>.<ext>`` in the output folder: ``<stem>_<map>.npy`` per requested map, optionally
``<stem>_slic_init.json`` and ``<stem>_montage.png``, and ``<stem>.json`` (metadata) written last. Every
file is written atomically (temporary file + ``os.replace``), and an existing ``<stem>.json`` is removed
before new outputs are written, so an interrupted run leaves no metadata that ``skip`` or ``update`` would
trust over incomplete outputs.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from lgi_preprocess import __version__, maps
from lgi_preprocess._io import (
    DEFAULT_BACKGROUND,
    as_rgb_float,
    decode_image,
    load_image,
    read_image_bytes,
    save_npy,
    sha256_bytes,
    write_text,
)
from lgi_preprocess.errors import PreprocessError
from lgi_preprocess.gaussians import SlicGaussians, generate_slic_gaussians
from lgi_preprocess.maps import DEFAULT_WEIGHTS, MAP_NAMES, check_weights

#: File-handling modes of :meth:`ImagePreprocessor.run`.
MODES: tuple[str, ...] = ("overwrite", "skip", "update", "prompt")
#: Identifies the metadata layout in ``<stem>.json``.
METADATA_FORMAT = "lgi-preprocess-metadata/1"
_DISTRIBUTIONS = {  # reported in the metadata: name → candidate distribution names
    "numpy": ("numpy",), "scipy": ("scipy",),
    "opencv": ("opencv-python-headless", "opencv-python", "opencv-contrib-python-headless", "opencv-contrib-python"),
    "scikit-image": ("scikit-image",), "mahotas": ("mahotas",), "pillow": ("pillow",),
}


@dataclass
class PreprocessConfig:
    """Every parameter of the pipeline (all recorded in the metadata; ``update`` recomputes when one changes).

    Attributes:
        maps: maps to produce, any of :data:`MAP_NAMES` (dependencies are computed but not returned).
        entropy_tile_size: entropy tile side in pixels.
        texture_tile_size, texture_step: Haralick tile side and distance between tiles (50 % overlap).
        n_segments, compactness, sigma: SLIC parameters.
        skeleton_min_size: segments smaller than this (pixels) get no skeleton.
        weights: placement weights by map name (default 0.30/0.25/0.20/0.15/0.10 for entropy, gradient,
            texture, saliency, distance).
        use_gpu: Sobel gradient through torch on CUDA (see :func:`gradient_map`).
        background: RGB in [0, 1] under transparent pixels.
        slic_init: :meth:`ImagePreprocessor.run` also writes ``<stem>_slic_init.json``.
        montage: :meth:`ImagePreprocessor.run` also writes ``<stem>_montage.png``.
    """

    maps: tuple[str, ...] = MAP_NAMES
    entropy_tile_size: int = 16
    texture_tile_size: int = 32
    texture_step: int = 16
    n_segments: int = 500
    compactness: float = 10.0
    sigma: float = 1.0
    skeleton_min_size: int = 100
    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    use_gpu: bool = False
    background: tuple[float, float, float] = DEFAULT_BACKGROUND
    slic_init: bool = False
    montage: bool = False

    def __post_init__(self) -> None:
        names = (self.maps,) if isinstance(self.maps, str) else tuple(self.maps)
        unknown = sorted(set(names) - set(MAP_NAMES))
        if unknown or not names:
            raise PreprocessError(f"unknown map(s) {', '.join(unknown) or '(none given)'}; choose from "
                                  f"{', '.join(MAP_NAMES)}")
        self.maps = tuple(m for m in MAP_NAMES if m in names)
        self.weights = {k: float(v) for k, v in dict(self.weights).items()}
        check_weights(self.weights)
        self.background = tuple(float(v) for v in self.background)
        if len(self.background) != 3 or not all(0.0 <= v <= 1.0 for v in self.background):
            raise PreprocessError(f"background must be 3 values in [0, 1], got {self.background}")
        for name, low in (("entropy_tile_size", 1), ("texture_tile_size", 2), ("texture_step", 1),
                          ("n_segments", 1), ("skeleton_min_size", 0)):
            if int(getattr(self, name)) < low:
                raise PreprocessError(f"{name} must be >= {low}, got {getattr(self, name)}")
        if not self.compactness > 0 or not self.sigma >= 0:
            raise PreprocessError(f"compactness must be > 0 and sigma >= 0, got {self.compactness}, {self.sigma}")

    def params(self) -> dict[str, Any]:
        """JSON-ready parameters, as recorded in the metadata."""
        return json.loads(json.dumps(asdict(self)))

    def steps(self) -> tuple[str, ...]:
        """Everything computed for this config, in order: needed maps, then ``slic_init`` and ``montage``."""
        needed = set(self.maps)
        if "placement" in needed:
            needed |= {k for k, v in self.weights.items() if v > 0}
        if needed & {"distance", "skeleton"} or self.slic_init:
            needed.add("segments")
        extra = tuple(s for s, on in (("slic_init", self.slic_init), ("montage", self.montage)) if on)
        return tuple(m for m in MAP_NAMES if m in needed) + extra

    def output_names(self, stem: str) -> dict[str, str]:
        """Output key → file name for an input named ``<stem>.*`` (the metadata's ``outputs``)."""
        names = {m: f"{stem}_{m}.npy" for m in self.maps}
        if self.slic_init:
            names["slic_init"] = f"{stem}_slic_init.json"
        if self.montage:
            names["montage"] = f"{stem}_montage.png"
        return names


@dataclass
class PreprocessResult:
    """Maps of one image and its metadata.

    Attributes:
        maps: name → [H, W] float32 in [0, 1] (``segments``: int32 labels; ``placement`` sums to 1).
        metadata: source (path, sha256, size), params, versions, per-step timings in seconds, statistics.
        gaussians: SLIC Gaussian initialization when ``config.slic_init`` is set, else ``None``.
    """

    maps: dict[str, np.ndarray]
    metadata: dict[str, Any]
    gaussians: SlicGaussians | None = None


@dataclass
class RunResult:
    """What :meth:`ImagePreprocessor.run` did for one input.

    Attributes:
        input: the input path.
        status: ``"written"`` or ``"skipped"``.
        reason: why (``"outputs exist"``, ``"input changed"``, ``"parameters changed"``, ...).
        outputs: output key → path, including ``metadata``.
        metadata: the metadata written (or found, when skipped; ``None`` if none is readable).
    """

    input: str
    status: str
    reason: str
    outputs: dict[str, str]
    metadata: dict[str, Any] | None


def package_versions(use_gpu: bool = False) -> dict[str, str | None]:
    """Versions of this package, Python and the libraries that compute the maps (read without importing)."""
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {"lgi-preprocess": __version__, "python": sys.version.split()[0]}
    wanted = dict(_DISTRIBUTIONS, **({"torch": ("torch",)} if use_gpu else {}))
    for key, candidates in wanted.items():
        found[key] = None
        for dist in candidates:
            try:
                found[key] = version(dist)
                break
            except PackageNotFoundError:
                continue
    return found


def _tty_confirm(question: str) -> bool:
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise PreprocessError(f"mode 'prompt' must ask ({question}) but there is no terminal; "
                              "use mode overwrite, skip or update")
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class ImagePreprocessor:
    """Computes content maps (:meth:`preprocess`) and writes them with metadata (:meth:`run`).

    Args:
        config: the parameters; ``None`` means the defaults.
        max_pixels: refuse image files of more pixels than this, from their header (``lgi preprocess
            --max-pixels``; None: Pillow's guard, see :func:`lgi_preprocess.load_image`).
    """

    def __init__(self, config: PreprocessConfig | None = None, max_pixels: int | None = None):
        self.config = config if config is not None else PreprocessConfig()
        self.max_pixels = max_pixels

    # ----------------------------------------------------------------------------------------- computing

    def preprocess(self, image_or_path: Any, progress: Callable[[str], None] | None = None) -> PreprocessResult:
        """All maps of one image.

        Args:
            image_or_path: a path, a PIL image, or an array (see :func:`lgi_preprocess.as_rgb_float`).
            progress: called with each step's name when it completes.

        Returns:
            :class:`PreprocessResult` with the requested maps.

        Raises:
            PreprocessError: unreadable input.
        """
        from PIL import Image

        if isinstance(image_or_path, (str, os.PathLike)):
            data = read_image_bytes(image_or_path)
            rgb = decode_image(data, str(image_or_path), background=self.config.background,
                               max_pixels=self.max_pixels)
            source = {"path": str(Path(image_or_path).resolve()), "sha256": sha256_bytes(data), "bytes": len(data)}
        elif isinstance(image_or_path, Image.Image):
            rgb, source = load_image(image_or_path, background=self.config.background, max_pixels=self.max_pixels), {}
        else:
            rgb, source = as_rgb_float(image_or_path, background=self.config.background), {}
        return self._compute(rgb, source, progress)

    def _compute(self, rgb: np.ndarray, source: dict[str, Any], progress: Callable[[str], None] | None
                 ) -> PreprocessResult:
        cfg = self.config
        H, W = rgb.shape[:2]
        computed: dict[str, np.ndarray] = {}
        timings: dict[str, float] = {}
        gaussians = None
        compute: dict[str, Callable[[], Any]] = {
            "entropy": lambda: maps.entropy_map(rgb, cfg.entropy_tile_size),
            "gradient": lambda: maps.gradient_map(rgb, use_gpu=cfg.use_gpu),
            "texture": lambda: maps.texture_map(rgb, cfg.texture_tile_size, cfg.texture_step),
            "saliency": lambda: maps.saliency_map(rgb),
            "segments": lambda: maps.slic_segments(rgb, cfg.n_segments, cfg.compactness, cfg.sigma),
            "distance": lambda: maps.distance_map(computed["segments"]),
            "skeleton": lambda: maps.skeleton_map(computed["segments"], cfg.skeleton_min_size),
            "placement": lambda: maps.placement_map(computed, cfg.weights),
        }
        for step in cfg.steps():
            if step == "montage":
                continue  # drawn by run(), which owns the files
            t0 = time.perf_counter()
            if step == "slic_init":
                gaussians = generate_slic_gaussians(rgb, segments=computed["segments"])
                gaussians.n_segments_requested = cfg.n_segments
                gaussians.source_image = source.get("path")
            else:
                computed[step] = compute[step]()
            timings[step] = round(time.perf_counter() - t0, 6)
            if progress is not None:
                progress(step)
        stats: dict[str, Any] = {}
        if "entropy" in computed:
            stats["global_entropy"] = float(computed["entropy"].mean())
        if "gradient" in computed:
            stats["mean_gradient"] = float(computed["gradient"].mean())
        if "texture" in computed:
            stats["texture_percentage"] = float((computed["texture"] > 0.5).mean() * 100.0)
        if "segments" in computed:
            stats["actual_segments"] = int(computed["segments"].max()) + 1
        metadata = {
            "format": METADATA_FORMAT,
            "source": {**source, "width": int(W), "height": int(H)},
            "params": cfg.params(),
            "versions": package_versions(cfg.use_gpu),
            "timings_s": timings,
            "statistics": stats,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        return PreprocessResult(maps={m: computed[m] for m in cfg.maps}, metadata=metadata, gaussians=gaussians)

    # ------------------------------------------------------------------------------------------- writing

    def run(self, path: str | os.PathLike, out_dir: str | os.PathLike, mode: str = "overwrite",
            progress: Callable[[str], None] | None = None, confirm: Callable[[str], bool] | None = None
            ) -> RunResult:
        """Preprocess one image file into ``out_dir`` as ``<stem>_<map>.npy`` + ``<stem>.json``.

        Modes: ``overwrite`` always computes and writes; ``skip`` does nothing when the metadata and every
        requested output exist; ``update`` recomputes only when an output is missing or the input's
        SHA-256 or the parameters differ from the metadata's; ``prompt`` asks ``confirm(question)`` before
        replacing existing outputs (default: ask on the terminal, and raise :class:`PreprocessError` when
        there is none). The input is read and decoded before anything is written, so a bad input leaves
        the output folder untouched.

        Returns:
            :class:`RunResult`.

        Raises:
            PreprocessError: unknown mode, unreadable input, or a prompt without a terminal.
        """
        if mode not in MODES:
            raise PreprocessError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
        cfg = self.config
        src, out = Path(path), Path(out_dir)
        names = cfg.output_names(src.stem)
        meta_path = out / f"{src.stem}.json"
        outputs = {k: str(out / v) for k, v in names.items()} | {"metadata": str(meta_path)}
        data = read_image_bytes(src)
        sha = sha256_bytes(data)
        complete = meta_path.is_file() and all((out / v).is_file() for v in names.values())

        def skipped(reason: str) -> RunResult:
            return RunResult(str(src), "skipped", reason, outputs, _read_json(meta_path))

        reason = f"mode {mode}"
        if mode == "skip" and complete and _read_json(meta_path) is not None:
            return skipped("outputs exist")
        if mode == "update":
            old = _read_json(meta_path) if complete else None
            if old is None:
                reason = "outputs missing"
            elif old.get("source", {}).get("sha256") != sha:
                reason = "input changed"
            elif old.get("params") != cfg.params():
                reason = "parameters changed"
            else:
                return skipped("input and parameters unchanged")
        if mode == "prompt" and (meta_path.exists() or any((out / v).exists() for v in names.values())):
            if not (confirm or _tty_confirm)(f"overwrite the outputs of {src.name} in {out}?"):
                return skipped("declined")
            reason = "confirmed"

        rgb = decode_image(data, str(src), background=cfg.background, max_pixels=self.max_pixels)
        source = {"path": str(src.resolve()), "sha256": sha, "bytes": len(data)}
        result = self._compute(rgb, source, progress)

        meta_path.unlink(missing_ok=True)  # first: stale metadata must never vouch for half-new outputs
        t0 = time.perf_counter()
        for m in cfg.maps:
            save_npy(out / names[m], result.maps[m])
        if result.gaussians is not None:
            result.gaussians.to_json(out / names["slic_init"])
        timings = result.metadata["timings_s"]
        timings["write"] = round(time.perf_counter() - t0, 6)
        if cfg.montage:
            from lgi_preprocess.montage import save_montage

            t0 = time.perf_counter()
            save_montage(out / names["montage"], rgb, result.maps, title=src.name)
            timings["montage"] = round(time.perf_counter() - t0, 6)
            if progress is not None:
                progress("montage")
        result.metadata["outputs"] = names
        write_text(meta_path, json.dumps(result.metadata, indent=2) + "\n")
        return RunResult(str(src), "written", reason, outputs, result.metadata)
