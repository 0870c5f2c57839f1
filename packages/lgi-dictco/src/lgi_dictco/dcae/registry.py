"""Named DCAE presets and the frozen model-id table written into ``.dcae`` files.

Names are stable API: a checkpoint records its preset name, a ``.dcae`` file records the preset's id.
The id table is frozen: an id is never renumbered or reused, new presets get new ids, and nothing is
derived from dict order. Id 0 means a model with custom sizes (its checkpoint fingerprint still ties a
file to its weights).
"""

from __future__ import annotations

from types import MappingProxyType

from lgi_dictco.dcae.config import DCAEConfig

#: Paper preset: Lu et al., "Learned Image Compression with Dictionary-based Entropy Model", CVPR 2025.
PAPER = DCAEConfig()
#: The mixture-of-experts variant of the paper preset: 4 experts of 64 entries per slice.
PAPER_MOE = DCAEConfig(num_experts=4, expert_entries=64)
#: The narrower MLPs, hyper heads and entropy heads of both CPU-sized presets (the rest of their
#: transforms, hyperprior window and depth keep the paper's values).
_CPU_SIZED = dict(swin_mlp_rate=2, res_blocks=1, hyper_head_dim=16, dict_mlp_rate=2, entropy_hidden=(32, 32))
#: A genuinely tiny model for tests and CPU experiments (about 0.2 M parameters).
TINY = DCAEConfig(
    N=32,
    M=40,
    num_slices=5,
    max_support_slices=5,
    feature_dims=(16, 24, 32),
    block_counts=(1, 2, 2),
    head_dims=(8, 8, 8, 8, 8, 8),
    dict_entries=16,
    dict_heads=2,
    dict_head_dim=8,
    **_CPU_SIZED,
)
TINY_MOE = TINY.replace(num_experts=3, expert_entries=8)
#: Sized for what two CPU cores can train in hours, and the preset of the shipped weights: the paper's
#: architecture with fewer channels and layers (4.9 M parameters). The half-resolution Swin stages are
#: left out (block count 0): at 128×128 crops they took half of a training step on a CPU, for the
#: smallest share of the transform. Measured speed and quality: benchmarks/bench_dictco.py.
SMALL = DCAEConfig(
    N=64,
    M=128,
    num_slices=4,
    max_support_slices=3,
    feature_dims=(48, 64, 96),
    block_counts=(0, 1, 2),
    head_dims=(0, 16, 16, 16, 16, 0),
    dict_entries=64,
    dict_heads=4,
    dict_head_dim=16,
    **_CPU_SIZED,
)

#: Frozen: id -> name. Never renumber, never reuse an id.
MODEL_IDS = MappingProxyType(
    {
        0: "custom",
        1: "dcae-paper",
        2: "dcae-moe-paper",
        3: "dcae-tiny",
        4: "dcae-moe-tiny",
        5: "dcae-small",
    }
)
PRESETS = MappingProxyType(
    {
        "dcae-paper": PAPER,
        "dcae-moe-paper": PAPER_MOE,
        "dcae-tiny": TINY,
        "dcae-moe-tiny": TINY_MOE,
        "dcae-small": SMALL,
    }
)
_IDS_BY_NAME = MappingProxyType({name: i for i, name in MODEL_IDS.items()})


def list_models() -> list[str]:
    """The preset names, sorted by id."""
    return [MODEL_IDS[i] for i in sorted(MODEL_IDS) if MODEL_IDS[i] in PRESETS]


def get_config(name: str) -> DCAEConfig:
    """The configuration of preset ``name``.

    Raises:
        KeyError: no such preset (the message lists the known names).
    """
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown DCAE model {name!r}; known: {', '.join(list_models())}") from None


def model_id(name: str) -> int:
    """The frozen id of preset ``name`` (0 for ``"custom"``)."""
    try:
        return _IDS_BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown DCAE model {name!r}; known: {', '.join(MODEL_IDS.values())}") from None


def model_name(model_id_: int) -> str:
    """The preset name of a frozen id.

    Raises:
        KeyError: the id is not in the table (a file from a newer version or a corrupted one).
    """
    try:
        return MODEL_IDS[model_id_]
    except KeyError:
        raise KeyError(f"unknown DCAE model id {model_id_}") from None


def name_of_config(config: DCAEConfig) -> str:
    """The preset whose sizes equal ``config``, or ``"custom"``."""
    for name in list_models():
        if PRESETS[name] == config:
            return name
    return "custom"


def build_model(name: str = "dcae-paper", **overrides):
    """A freshly initialised :class:`~lgi_dictco.dcae.model.DCAE` of preset ``name``.

    Args:
        name: a preset name (see :func:`list_models`).
        **overrides: fields of :class:`DCAEConfig` to change (the result is then ``"custom"`` unless it
            equals a preset).
    """
    from lgi_dictco.dcae.model import DCAE

    config = get_config(name)
    return DCAE(config.replace(**overrides) if overrides else config)
