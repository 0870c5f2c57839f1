"""One image ⇄ one ``.dcae`` file with a DCAE model: the glue between the model and the format."""

from __future__ import annotations

import torch
from torch import Tensor

from lgi_dictco.dcae import format as fmt
from lgi_dictco.dcae.model import DCAE
from lgi_dictco.dcae.registry import model_id, name_of_config
from lgi_dictco.errors import LgiFormatError


def encode(model: DCAE, image: Tensor, *, lmbda: float = 0.0, metric: str = "unknown") -> bytes:
    """Code one image into the bytes of a ``.dcae`` file.

    Args:
        model: an ``update()``-d model in eval mode.
        image: [3, H, W] or [1, 3, H, W] in [0, 1], on any device (moved to the model's).
        lmbda: λ the model was trained with (recorded in the header; 0 = unknown).
        metric: "mse", "ms-ssim" or "unknown" (recorded in the header).
    """
    x = image.unsqueeze(0) if image.dim() == 3 else image
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"encode() codes one image [3, H, W] or [1, 3, H, W], got {tuple(image.shape)}")
    x = x.to(model.device, torch.float32)
    out = model.compress(x)
    h, w = out["size"]
    y_shape, z_shape = fmt.latent_shapes(h, w)
    header = fmt.DcaeHeader(
        model_id(name_of_config(model.config)),
        model.fingerprint(),
        float(lmbda),
        metric,
        h,
        w,
        y_shape,
        z_shape,
    )
    return fmt.pack(header, out["strings"][0][0], out["strings"][1][0])


def check_compatible(model: DCAE, header: fmt.DcaeHeader) -> None:
    """Raise :class:`LgiFormatError` unless ``model`` has exactly the weights that coded the file."""
    file_model = fmt.model_name_of(header)
    ours = name_of_config(model.config)
    if file_model != ours:
        raise LgiFormatError(
            f"this .dcae file was coded by a {file_model} model, the checkpoint is {ours}: "
            "decode with the checkpoint that encoded it"
        )
    if header.fingerprint != model.fingerprint():
        raise LgiFormatError(
            f"this .dcae file was coded with other {ours} weights (fingerprint "
            f"{header.fingerprint:08x}, the checkpoint has {model.fingerprint():08x}): decode "
            "with the checkpoint that encoded it"
        )


def decode(model: DCAE, data: bytes, *, max_pixels: int = fmt.MAX_PIXELS) -> tuple[Tensor, fmt.DcaeHeader]:
    """Decode the bytes of a ``.dcae`` file on the model's device.

    Returns:
        (image [1, 3, H, W] in [0, 1], header).

    Raises:
        LgiFormatError: the file is malformed (:func:`~lgi_dictco.dcae.format.check_file`, the checks
            ``lgi dictco decompress`` makes before torch loads), or was not coded with this model's weights.
    """
    header, y_string, z_string = fmt.check_file(data, max_pixels=max_pixels)
    check_compatible(model, header)
    out = model.decompress([[y_string], [z_string]], header.y_shape, (header.height, header.width))
    return out["x_hat"], header
