"""Training data: random (or centred) square crops from a folder of images, with optional flips and
scale augmentation."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from lgi_dictco.dcae.io import list_images


class ImageCrops(Dataset):
    """Crops of ``patch_size × patch_size`` from every image of a folder, as [3, P, P] floats in [0, 1].

    Images smaller than the patch are padded by replicating their edges. Random crops (training) use
    torch's global generator, which ``DataLoader`` seeds per worker; centred crops (validation) are
    deterministic and never augmented.

    Scale augmentation takes a square of ``patch_size / s`` source pixels, with ``s`` log-uniform in
    [``scale_min``, 1], and shrinks it to the patch (bilinear with antialiasing, so no value leaves
    [0, 1]): large photos then also show the detail density of smaller ones.

    Args:
        folder: image folder (searched recursively) or a single image file.
        patch_size: crop side (DCAE: 256).
        random_crop: random crops (training) or centred crops (validation).
        repeats: crops taken from each image per epoch (for small folders).
        cache: keep decoded images in memory (worth it for few, large images).
        hflip: mirror half of the random crops left-right.
        scale_min: smallest scale factor of the scale augmentation, in (0, 1]; 1 turns it off.
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        patch_size: int = 256,
        random_crop: bool = True,
        repeats: int = 1,
        cache: bool = True,
        hflip: bool = False,
        scale_min: float = 1.0,
    ):
        if patch_size < 16 or patch_size % 16:
            raise ValueError(f"patch size must be a positive multiple of 16, got {patch_size}")
        if repeats < 1:
            raise ValueError(f"repeats must be ≥ 1, got {repeats}")
        if not 0 < scale_min <= 1:
            raise ValueError(f"scale_min must be in (0, 1], got {scale_min}")
        self.files: list[Path] = list_images(folder)
        self.hflip, self.scale_min = hflip, float(scale_min)
        self.patch_size, self.random_crop, self.repeats, self.cache = patch_size, random_crop, repeats, cache
        self._cache: dict[int, Tensor] = {}

    def __len__(self) -> int:
        return len(self.files) * self.repeats

    def _image(self, index: int) -> Tensor:
        if index in self._cache:
            return self._cache[index]
        from PIL import Image

        with Image.open(self.files[index]) as im:
            image = torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1)
        if self.cache:
            self._cache[index] = image
        return image

    def __getitem__(self, index: int) -> Tensor:
        image = self._image(index % len(self.files))
        p = self.patch_size
        _, h, w = image.shape
        if h < p or w < p:
            image = F.pad(image[None].float(), (0, max(p - w, 0), 0, max(p - h, 0)), mode="replicate")[0]
            _, h, w = image.shape
        if not self.random_crop:
            top, left = (h - p) // 2, (w - p) // 2
            return image[:, top : top + p, left : left + p].float().div(255.0)
        side = p
        if self.scale_min < 1:
            log_scale = float(torch.empty(()).uniform_(math.log(self.scale_min), 0.0))
            side = max(p, min(round(p / math.exp(log_scale)), h, w))
        top = int(torch.randint(0, h - side + 1, ()).item())
        left = int(torch.randint(0, w - side + 1, ()).item())
        crop = image[:, top : top + side, left : left + side].float().div(255.0)
        if side != p:
            crop = F.interpolate(crop[None], size=(p, p), mode="bilinear", antialias=True, align_corners=False)[0]
            crop = crop.clamp_(0.0, 1.0)
        if self.hflip and bool(torch.rand(()) < 0.5):
            crop = crop.flip(-1)
        return crop
