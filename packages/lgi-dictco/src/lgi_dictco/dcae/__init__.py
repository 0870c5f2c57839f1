"""DCAE, the dictionary-based learned image codec (Lu et al., CVPR 2025), on compressai's rANS coder.

The public API::

    from lgi_dictco.dcae import DCAE, DCAEConfig, build_model, list_models, load_model, encode, decode

    model = build_model("dcae-tiny")            # a preset; build_model("dcae-paper") for the paper's sizes
    model.eval(); model.update()
    data = encode(model, image)                # image: [3, H, W] or [1, 3, H, W] in [0, 1] -> .dcae bytes
    x_hat, header = decode(model, data)        # bit-exact with the encoder's reconstruction

Importing this subpackage is cheap: :mod:`.format` (the file and its checks), :mod:`.registry` and
:mod:`.config` need no torch, so ``lgi dictco decompress`` refuses a hostile file before torch and
compressai load (:func:`.format.check_file`). The names above load their modules on first use; the
model (:mod:`.model`) imports compressai through :mod:`lgi_dictco._compressai_all`, quietly.
"""

from __future__ import annotations

import importlib

#: Public name -> the submodule that defines it, imported on first access (PEP 562).
_EXPORTS = {
    "CheckpointError": "checkpoint",
    "load_checkpoint": "checkpoint",
    "load_model": "checkpoint",
    "save_checkpoint": "checkpoint",
    "decode": "codec",
    "encode": "codec",
    "DCAEConfig": "config",
    "config_from_state_dict": "config",
    "MAX_PIXELS": "format",
    "DcaeHeader": "format",
    "pack": "format",
    "unpack": "format",
    "DCAE": "model",
    "PAD_MULTIPLE": "model",
    "MODEL_IDS": "registry",
    "PRESETS": "registry",
    "build_model": "registry",
    "get_config": "registry",
    "list_models": "registry",
    "model_id": "registry",
}

__all__ = [
    "DCAE",
    "DCAEConfig",
    "PAD_MULTIPLE",
    "MODEL_IDS",
    "PRESETS",
    "MAX_PIXELS",
    "DcaeHeader",
    "CheckpointError",
    "build_model",
    "get_config",
    "list_models",
    "model_id",
    "config_from_state_dict",
    "encode",
    "decode",
    "pack",
    "unpack",
    "load_checkpoint",
    "load_model",
    "save_checkpoint",
]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
