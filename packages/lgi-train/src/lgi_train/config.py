"""The fitting configuration: one dataclass, YAML load/save, validation with clear messages.

The defaults are what measured best on Kodak within a time budget (docs/training.md); the Image-GS recipe
(cfgs/default.yaml of Image-GS, in our units) is the preset ``image-gs``. ``default.yaml`` beside this
module is the same set of defaults, written out.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

INIT_MODES = ("gradient", "placement", "slic", "saliency", "random")
LOSSES = ("l1_ssim", "l1", "l2", "ms_ssim", "l1_lpips")
RENDER_MODES = ("topk", "sum", "topk-hard")


# Named starting points for `lgi fit --preset`; a preset changes only the fields it names.
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    # Image-GS (SIGGRAPH 2025) as published: top-k normalized blending, L1 + SSIM, a plateau schedule that
    # decays the learning rates and stops the fit by itself, no coarse-to-fine.
    "image-gs": {"render_mode": "topk", "topk": 10, "loss": "l1_ssim", "ssim_weight": 0.1, "schedule": "plateau",
                 "coarse_to_fine": False, "progressive": True, "adam_beta2": 0.999},
}


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field and the allowed values."""


@dataclass
class FitConfig:
    """Everything that decides a fit. Every `lgi fit` flag maps to one field.

    Units: positions live in the unit square; ``init_scale`` multiplies the local spacing of the
    initial Gaussians (see lgi_train.init); learning rates apply to the stored parameters
    (position, log-scale, rotation in radians, colour).
    """

    # model
    num_gaussians: int = 10000
    # The defaults are the configuration that measured best on Kodak within a time budget (sum blending,
    # the L2 loss, a cosine schedule, coarse-to-fine for the first half; docs/training.md); the Image-GS
    # recipe is the preset "image-gs".
    render_mode: str = "sum"
    topk: int = 10
    # initialization
    init: str = "gradient"
    init_uniform_fraction: float = 0.3
    init_scale: float = 0.6
    slic_segments: int = 0          # 0: N/2 segments (SLIC init only)
    saliency_weights: str | None = None
    # loss
    # L2 (PSNR's own loss; the fused kernel) gave 34.17 dB on the 24 Kodak images at 10 000 Gaussians in
    # 120 s against 33.44 with L1 + 0.1·(1 − SSIM): cheaper steps (7000-11400 against 4400-5800), and
    # the metric itself (docs/training.md). ssim_weight applies to l1_ssim only.
    loss: str = "l2"
    ssim_weight: float = 0.1
    lpips_weights: str | None = None
    lpips_weight: float = 0.1
    # optimizer (Adam); Image-GS: position 5e-4, scale 2e-3, rotation 2e-3, colour 5e-3
    lr_position: float = 5e-4
    lr_scale: float = 5e-3
    lr_rotation: float = 2e-3
    lr_color: float = 5e-3
    # Adam's second-moment decay (β1 stays 0.9). 0.9 instead of torch's 0.999: the step sizes follow the
    # gradients as the fit settles; at the defaults +0.73 dB on kodim05 and +0.93 on kodim23 in the same
    # 2000 steps (docs/training.md). The encoder's fit uses 0.9 in its full-size phase (docs/encoder.md).
    adam_beta2: float = 0.9
    # The position learning rate is a step in pixels: ``lr_position`` moves a Gaussian that many units of
    # the unit square on a canvas whose longer side is ``position_side`` pixels (0.384 px at 768), and a
    # larger canvas gets it scaled by position_side / side, the same step in pixels (the encoder's rule:
    # +1.42 dB on the mean of the seven 2048-px CLIC photos, docs/codec.md). A smaller canvas keeps it.
    # None: the same rate in the unit square at every size.
    position_side: int | None = 768
    # schedule: "plateau" (Image-GS: decay on plateaus, stop at the last) or "cosine" (a fixed budget:
    # learning rates follow a half cosine from `cosine_start`·steps down to `lr_floor` at the end)
    schedule: str = "cosine"
    steps: int = 2000
    max_seconds: float | None = None
    cosine_start: float = 0.3
    lr_floor: float = 0.05
    plateau_patience: int = 100     # steps without a PSNR gain of plateau_min_gain
    plateau_min_gain: float = 0.02  # dB
    lr_decay: float = 0.1
    max_plateaus: int = 2           # the second plateau ends the fit
    # progressive growth
    progressive: bool = True
    initial_fraction: float = 0.5
    growth_batches: int = 5
    growth_end: float = 0.5         # all Gaussians are in by this fraction of `steps`
    growth_blur: float = 1.0        # Gaussian blur (pixels) of the error map before sampling
    reset_optimizer_on_growth: bool = False
    # coarse-to-fine
    coarse_to_fine: bool = True
    coarse_scale: float = 0.5
    coarse_fraction: float = 0.5
    # the first quarter_fraction of the steps (inside the coarse ones) at a quarter of the size, as the
    # encoder's fit starts (a sixth of a full step's time)
    quarter_fraction: float = 0.0
    # quantization-aware training
    qat: bool = False
    qat_start: float = 0.8          # fraction of `steps` after which quantization is on
    bits_position: int = 16
    bits_scale: int = 16
    bits_rotation: int = 16
    bits_color: int = 16
    # run
    device: str = "cpu"
    backend: str = "auto"
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 0       # 0: only at the end
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> FitConfig:
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ConfigError(msg)

        need(self.num_gaussians >= 1, f"num_gaussians must be >= 1, got {self.num_gaussians}")
        need(self.init in INIT_MODES, f"unknown init {self.init!r}; choose one of {', '.join(INIT_MODES)}")
        need(self.loss in LOSSES, f"unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        need(self.render_mode in RENDER_MODES, f"render_mode must be one of {RENDER_MODES}")
        need(self.schedule in ("plateau", "cosine"), f"schedule must be plateau or cosine, got {self.schedule!r}")
        need(0.0 <= self.cosine_start < 1.0 and 0.0 < self.lr_floor <= 1.0, "cosine_start in [0, 1), lr_floor in (0, 1]")
        need(1 <= self.topk <= 32, f"topk must be in 1..32, got {self.topk}")
        need(0.0 <= self.init_uniform_fraction <= 1.0, "init_uniform_fraction must be in [0, 1]")
        need(self.init_scale > 0, "init_scale must be > 0")
        need(self.steps >= 0, f"steps must be >= 0, got {self.steps}")
        need(self.max_seconds is None or self.max_seconds > 0, "max_seconds must be > 0")
        need(0.0 < self.initial_fraction <= 1.0, "initial_fraction must be in (0, 1]")
        need(self.growth_batches >= 1, "growth_batches must be >= 1")
        need(0.0 < self.growth_end <= 1.0, "growth_end must be in (0, 1]")
        need(0.0 < self.coarse_scale < 1.0, "coarse_scale must be in (0, 1)")
        need(0.0 <= self.coarse_fraction < 1.0, "coarse_fraction must be in [0, 1)")
        need(0.0 <= self.quarter_fraction <= self.coarse_fraction,
             "quarter_fraction must be in [0, coarse_fraction] (the quarter-size steps come first among the coarse ones)")
        need(0.0 <= self.qat_start <= 1.0, "qat_start must be in [0, 1]")
        for name in ("bits_position", "bits_scale", "bits_rotation", "bits_color"):
            bits = getattr(self, name)
            need(4 <= bits <= 32, f"{name} must be in 4..32, got {bits}")
        need(self.position_side is None or self.position_side >= 1,
             f"position_side must be None or >= 1, got {self.position_side}")
        for name in ("lr_position", "lr_scale", "lr_rotation", "lr_color"):
            need(getattr(self, name) >= 0, f"{name} must be >= 0")
        need(0.0 <= self.adam_beta2 < 1.0, f"adam_beta2 must be in [0, 1), got {self.adam_beta2}")
        need(self.device in ("cpu", "cuda") or self.device.startswith("cuda:"), "device must be cpu or cuda[:i]")
        need(self.backend in ("auto", "cpu", "cuda", "torch"), "backend must be auto, cpu, cuda or torch")
        need(self.max_plateaus >= 1 and 0 < self.lr_decay < 1, "max_plateaus >= 1 and lr_decay in (0, 1)")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FitConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown config field(s): {', '.join(unknown)}")
        return cls(**data).validate()

    @classmethod
    def preset(cls, name: str) -> FitConfig:
        """The defaults with preset ``name`` applied (:data:`PRESETS`)."""
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        return cls().replace(**PRESETS[name])

    def replace(self, **changes: Any) -> FitConfig:
        return dataclasses.replace(self, **changes).validate()

    def save(self, path: str | Path) -> None:
        import yaml

        from lgi_dictco.fileio import atomic_write_bytes

        atomic_write_bytes(path, yaml.safe_dump(self.to_dict(), sort_keys=False).encode())

    @classmethod
    def load(cls, path: str | Path, base: FitConfig | None = None) -> FitConfig:
        """A YAML config; fields it leaves out keep the values of ``base`` (the defaults when None)."""
        import yaml

        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a mapping of field: value")
        return cls.from_dict({**(base or cls()).to_dict(), **data})


def default_config_path() -> Path:
    return Path(__file__).with_name("default.yaml")
