"""DCAE's size configuration and its inference from a state dict.

Every size of the model is a field of :class:`DCAEConfig`; the presets in
:mod:`lgi_dictco.dcae.registry` are instances of it. :func:`config_from_state_dict` recovers the
configuration from tensor shapes alone, so a bare ``state_dict`` (from this package, or one saved by
``DistributedDataParallel`` with its ``module.`` prefix) rebuilds the right model.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the model registry and the .dcae checks load without torch
    import torch


@dataclass(frozen=True)
class DCAEConfig:
    """Sizes of a DCAE model. The defaults are the paper's (Lu et al., CVPR 2025).

    Attributes:
        N: hyper-latent channels (z has N channels at 1/64 of the image).
        M: latent channels (y has M channels at 1/16 of the image).
        num_slices: channel slices of y coded one after another (M must be a multiple).
        max_support_slices: how many earlier slices condition a slice; values ≥ num_slices − 1 or
            negative mean "all earlier slices" and are stored as num_slices − 1.
        feature_dims: widths of the three inner stages of the analysis/synthesis transforms.
        block_counts: Swin layers per stage (shallow to deep), mirrored in the synthesis transform. A
            count of 0 leaves that stage out (the residual bottleneck blocks remain): small presets skip
            the full-resolution-half stage, where window attention costs most on a CPU.
        head_dims: channels per attention head of the six Swin stages (g_a 1..3, then g_s 1..3); stored
            as 0 for a stage that has no layers.
        window_size: Swin window of the main transforms.
        swin_mlp_rate: nominal MLP width of all Swin layers (main and hyper), in multiples of their width.
        res_blocks: residual bottleneck blocks in every strided / upsampling block.
        hyper_head_dim: channels per head of the hyper transforms' Swin stages.
        hyper_window_size: Swin window of the hyper transforms.
        hyper_depth: Swin layers in each hyper transform.
        dict_entries: entries of the shared dictionary (single-dictionary model; 0 with experts).
        dict_heads: cross-attention heads.
        dict_head_dim: channels per cross-attention head (dictionary width = heads · head_dim).
        dict_mlp_rate: nominal MLP width of the cross-attention, in multiples of the dictionary width.
        entropy_hidden: widths of the two hidden layers of the mean, scale and LRP heads.
        num_experts: 0 for the single shared dictionary; K ≥ 2 for the mixture-of-experts variant.
        expert_entries: entries per expert dictionary (mixture of experts; 0 without).
    """

    N: int = 192
    M: int = 320
    num_slices: int = 5
    max_support_slices: int = 5
    feature_dims: tuple[int, int, int] = (96, 144, 256)
    block_counts: tuple[int, int, int] = (1, 2, 12)
    head_dims: tuple[int, int, int, int, int, int] = (8, 16, 32, 32, 16, 8)
    window_size: int = 8
    swin_mlp_rate: int = 4
    res_blocks: int = 3
    hyper_head_dim: int = 32
    hyper_window_size: int = 4
    hyper_depth: int = 1
    dict_entries: int = 128
    dict_heads: int = 20
    dict_head_dim: int = 32
    dict_mlp_rate: int = 4
    entropy_hidden: tuple[int, int] = (224, 128)
    num_experts: int = 0
    expert_entries: int = 64

    def __post_init__(self) -> None:
        for name in ("feature_dims", "block_counts", "head_dims", "entropy_hidden"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        lengths = {"feature_dims": 3, "block_counts": 3, "head_dims": 6, "entropy_hidden": 2}
        for name, n in lengths.items():
            if len(getattr(self, name)) != n:
                raise ValueError(f"DCAEConfig.{name} needs {n} values, got {getattr(self, name)}")
        if self.num_experts < 0 or self.num_experts == 1:
            raise ValueError(f"DCAEConfig.num_experts must be 0 or ≥ 2, got {self.num_experts}")
        positive = [
            "N",
            "M",
            "num_slices",
            "window_size",
            "swin_mlp_rate",
            "hyper_head_dim",
            "hyper_window_size",
            "hyper_depth",
            "dict_heads",
            "dict_head_dim",
            "dict_mlp_rate",
            "expert_entries" if self.num_experts else "dict_entries",
        ]
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"DCAEConfig.{name} must be ≥ 1, got {getattr(self, name)}")
        for name in ("feature_dims", "entropy_hidden"):
            if min(getattr(self, name)) < 1:
                raise ValueError(f"DCAEConfig.{name} must be positive, got {getattr(self, name)}")
        if min(self.block_counts) < 0:
            raise ValueError(f"DCAEConfig.block_counts must be ≥ 0, got {self.block_counts}")
        # A stage without layers has no heads: its head_dim is stored as 0, so equal models compare equal.
        heads = tuple(0 if d == 0 else h for d, h in zip(self.stage_depths, self.head_dims))
        object.__setattr__(self, "head_dims", heads)
        if any(h < 1 for d, h in zip(self.stage_depths, heads) if d):
            raise ValueError(f"DCAEConfig.head_dims must be positive, got {self.head_dims}")
        if self.res_blocks < 0:
            raise ValueError(f"DCAEConfig.res_blocks must be ≥ 0, got {self.res_blocks}")
        if self.M % self.num_slices:
            raise ValueError(f"DCAEConfig: M={self.M} is not a multiple of num_slices={self.num_slices}")
        dims = (*self.feature_dims, *reversed(self.feature_dims))
        for i, (dim, hd) in enumerate(zip(dims, self.head_dims)):
            if hd and dim % hd:
                raise ValueError(
                    f"DCAEConfig: Swin stage {i} has width {dim}, not a multiple of head_dims[{i}]={hd}"
                )
        if self.N % self.hyper_head_dim:
            raise ValueError(
                f"DCAEConfig: N={self.N} is not a multiple of hyper_head_dim={self.hyper_head_dim}"
            )
        # Fields the variant does not use are stored as 0, so equal models have equal configs.
        object.__setattr__(self, "expert_entries" if not self.num_experts else "dict_entries", 0)
        most = self.num_slices - 1
        if self.max_support_slices < 0 or self.max_support_slices > most:
            object.__setattr__(self, "max_support_slices", most)

    @property
    def stage_depths(self) -> tuple[int, int, int, int, int, int]:
        """Swin layers of the six stages in head_dims order (g_a 1..3, then g_s 1..3, mirrored)."""
        b0, b1, b2 = self.block_counts
        return (b0, b1, b2, b2, b1, b0)

    @property
    def slice_channels(self) -> int:
        """Channels per slice of y."""
        return self.M // self.num_slices

    @property
    def dict_dim(self) -> int:
        """Width of the dictionary and of the cross-attention features."""
        return self.dict_heads * self.dict_head_dim

    @property
    def moe(self) -> bool:
        """Whether this is the mixture-of-experts variant."""
        return self.num_experts >= 2

    def support_slices(self, index: int) -> int:
        """How many earlier slices condition slice ``index``."""
        return min(index, self.max_support_slices)

    def to_dict(self) -> dict:
        """Plain JSON-compatible dict (tuples become lists)."""
        return {
            f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
            for f in dataclasses.fields(self)
            if not f.name.startswith("_")
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> DCAEConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error (a newer or foreign checkpoint)."""
        names = {f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown DCAE config fields: {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    def replace(self, **changes) -> DCAEConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def strip_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the ``module.`` prefix that DataParallel / DistributedDataParallel add to every key."""
    if state_dict and all(k.startswith("module.") for k in state_dict):
        return {k[len("module.") :]: v for k, v in state_dict.items()}
    return dict(state_dict)


def _get(sd: Mapping[str, torch.Tensor], key: str) -> torch.Tensor:
    try:
        return sd[key]
    except KeyError:
        raise ValueError(f"not a DCAE state dict: it has no {key!r}") from None


def _count(sd: Mapping[str, torch.Tensor], pattern: str) -> int:
    """Number of distinct indices captured by the one group of ``pattern`` among the keys."""
    rx = re.compile(pattern)
    return len({m.group(1) for k in sd if (m := rx.match(k))})


def _ceil_div(a: int, b: int) -> int:
    # ConvGELU's first layer has 2·(rate·dim // 2) outputs: one less than rate·dim when that is odd.
    return -(-a // b)


def _swin(sd: Mapping[str, torch.Tensor], prefix: str) -> tuple[int, int, int, int]:
    """(depth, head_dim, window, mlp_rate) of the Swin stage at ``prefix``; (0, 0, 0, 0) if it is left out."""
    depth = _count(sd, re.escape(prefix) + r"\.layers\.(\d+)\.")
    if depth == 0 and f"{prefix}.conv.weight" not in sd:
        return 0, 0, 0, 0
    table = _get(sd, f"{prefix}.layers.0.attn.relative_position_bias")
    dim = _get(sd, f"{prefix}.conv.weight").shape[0]
    window = (round(table.shape[0] ** 0.5) + 1) // 2
    heads = table.shape[1]
    mlp_rate = _ceil_div(_get(sd, f"{prefix}.layers.0.mlp.fc1.weight").shape[0], dim)
    return depth, dim // heads, window, mlp_rate


def config_from_state_dict(state_dict: Mapping[str, torch.Tensor]) -> DCAEConfig:
    """Recover a :class:`DCAEConfig` from the shapes in a DCAE state dict.

    Raises:
        ValueError: the state dict is not one of a DCAE model.
    """
    sd = strip_prefix(state_dict)
    f0 = _get(sd, "g_a.0.conv.weight").shape[0]
    f1 = _get(sd, "g_a.2.conv.weight").shape[0]
    f2 = _get(sd, "g_a.4.conv.weight").shape[0]
    M = _get(sd, "g_a.6.weight").shape[0]
    N = _get(sd, "h_a.0.conv.weight").shape[0]
    stages = [_swin(sd, p) for p in ("g_a.1", "g_a.3", "g_a.5", "g_s.1", "g_s.3", "g_s.5")]
    present = [s for s in stages if s[0]]
    if not present:
        raise ValueError("not a DCAE state dict: its transforms have no Swin stage")
    hyper = _swin(sd, "h_a.1")
    num_slices = _count(sd, r"slices\.(\d+)\.")
    if num_slices < 1:
        raise ValueError("not a DCAE state dict: it has no entropy-model slices")
    slice_ch = M // num_slices
    max_support = 0
    for i in range(num_slices):
        q_in = _get(sd, f"slices.{i}.attention.in_proj.weight").shape[1]
        max_support = max(max_support, (q_in - 2 * M) // slice_ch)
    dict_heads = _get(sd, "slices.0.attention.temperature").shape[0]
    dict_dim = _get(sd, "slices.0.attention.q_proj.weight").shape[0]
    experts = sd.get("slices.0.attention.experts")
    num_experts, expert_entries = (0, 0) if experts is None else (experts.shape[0], experts.shape[1])
    dict_entries = _get(sd, "dictionary").shape[0] if experts is None else 0
    return DCAEConfig(
        N=N,
        M=M,
        num_slices=num_slices,
        max_support_slices=max_support,
        feature_dims=(f0, f1, f2),
        block_counts=tuple(s[0] for s in stages[:3]),
        head_dims=tuple(s[1] for s in stages),
        window_size=present[0][2],
        swin_mlp_rate=present[0][3],
        res_blocks=_count(sd, r"g_a\.0\.blocks\.(\d+)\."),
        hyper_head_dim=hyper[1],
        hyper_window_size=hyper[2],
        hyper_depth=hyper[0],
        dict_entries=dict_entries,
        dict_heads=dict_heads,
        dict_head_dim=dict_dim // dict_heads,
        dict_mlp_rate=_ceil_div(_get(sd, "slices.0.attention.mlp.fc1.weight").shape[0], dict_dim),
        entropy_hidden=(
            _get(sd, "slices.0.mean.0.weight").shape[0],
            _get(sd, "slices.0.mean.2.weight").shape[0],
        ),
        num_experts=num_experts,
        expert_entries=expert_entries,
    )
