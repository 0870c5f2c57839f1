"""autograd.Functions over the native kernels (and over the reference when nothing may be saved)."""

from __future__ import annotations

from types import ModuleType

import torch
from torch.autograd.function import once_differentiable

from lgi_fused_ssim._reference import ssim_map_reference

NO_TRAIN_MESSAGE = (
    "fused_ssim was called with train=False, which saves nothing for the backward pass; call it with "
    "train=True (the default) to differentiate it"
)


class FusedSSIM(torch.autograd.Function):
    """SSIM map or mean through a native kernel; differentiable with respect to img1 only.

    With ``train`` the forward saves img1, img2 and the three partial derivatives [B, C, H', W'], so
    the backward is one pass (three separable filterings); without it nothing is saved.
    """

    @staticmethod
    def forward(ctx, img1: torch.Tensor, img2: torch.Tensor, same: bool, train: bool, reduce: bool,
                ops: ModuleType) -> torch.Tensor:
        ssim_map, mean, dm_dmu1, dm_dsxx, dm_dsxy = ops.forward(img1, img2, same, train)
        ctx.same, ctx.train, ctx.reduce, ctx.ops = same, train, reduce, ops
        ctx.map_numel = ssim_map.numel()
        if train:
            ctx.save_for_backward(img1, img2, dm_dmu1, dm_dsxx, dm_dsxy)
        return mean if reduce else ssim_map

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        if not ctx.train:
            raise RuntimeError(NO_TRAIN_MESSAGE)
        if not ctx.needs_input_grad[0]:
            return None, None, None, None, None, None
        img1, img2, dm_dmu1, dm_dsxx, dm_dsxy = ctx.saved_tensors
        if ctx.reduce:
            # d(mean)/d(map) is the same for every pixel: pass one value, not a full map.
            dl_dmap = (grad.to(torch.float32) / ctx.map_numel).reshape(1).contiguous()
        else:
            dl_dmap = grad.to(torch.float32).contiguous()
        grad1 = ctx.ops.backward(img1, img2, dl_dmap, dm_dmu1, dm_dsxx, dm_dsxy, ctx.same)
        return grad1, None, None, None, None, None


class ReferenceNoTrain(torch.autograd.Function):
    """The reference evaluated with nothing saved (``train=False``); backward raises a clear error."""

    @staticmethod
    def forward(ctx, img1: torch.Tensor, img2: torch.Tensor, padding: str, reduce: bool) -> torch.Tensor:
        ssim_map = ssim_map_reference(img1, img2, padding)
        return ssim_map.mean() if reduce else ssim_map

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        raise RuntimeError(NO_TRAIN_MESSAGE)
