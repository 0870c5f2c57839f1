"""DCAE, the dictionary-based learned image codec (Lu et al., CVPR 2025), on compressai's rANS coder.

Importing this subpackage imports torch and compressai. The public API::

    from lgi_dictco.dcae import DCAE, DCAEConfig, build_model, list_models, load_model, encode, decode

    model = build_model("dcae-tiny")            # a preset; build_model("dcae-paper") for the paper's sizes
    model.eval(); model.update()
    data = encode(model, image)                # image: [3, H, W] or [1, 3, H, W] in [0, 1] -> .dcae bytes
    x_hat, header = decode(model, data)        # bit-exact with the encoder's reconstruction
"""

from lgi_dictco import _compressai_all  # noqa: F401 - first: compressai loads quietly, sharing ans
from lgi_dictco.dcae.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from lgi_dictco.dcae.codec import decode, encode
from lgi_dictco.dcae.config import DCAEConfig, config_from_state_dict
from lgi_dictco.dcae.format import MAX_PIXELS, DcaeHeader, pack, unpack
from lgi_dictco.dcae.model import DCAE, PAD_MULTIPLE
from lgi_dictco.dcae.registry import MODEL_IDS, PRESETS, build_model, get_config, list_models, model_id

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
