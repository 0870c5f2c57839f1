"""Convolutional building blocks of DCAE's transforms.

DCAE (Lu et al., "Learned Image Compression with Dictionary-based Entropy Model", CVPR 2025) builds its
analysis and synthesis transforms from residual bottleneck blocks (strided or upsampling) interleaved with
Swin stages (:mod:`lgi_dictco.dcae.swin`). The blocks here carry no normalisation layer: batch
normalisation would make a codec's output depend on the batch it was trained with, and the reference
implementation uses plain convolution + ReLU bottlenecks.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ResidualBottleneckBlock(nn.Module):
    """1×1 → ReLU → 3×3 → ReLU → 1×1 with an identity shortcut; the middle width is half the input.

    Args:
        channels: input and output channels.
    """

    def __init__(self, channels: int):
        super().__init__()
        mid = max(channels // 2, 1)
        self.conv1 = nn.Conv2d(channels, mid, kernel_size=1)
        self.conv2 = nn.Conv2d(mid, mid, kernel_size=3, padding=1)
        self.conv3 = nn.Conv2d(mid, channels, kernel_size=1)
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, C, H, W] -> [B, C, H, W]."""
        out = self.act(self.conv1(x))
        out = self.act(self.conv2(out))
        return x + self.conv3(out)


class ResidualBottleneckBlockWithStride(nn.Module):
    """A 5×5 stride-2 convolution followed by ``num_blocks`` residual bottleneck blocks (H → ⌈H/2⌉).

    Args:
        in_ch: input channels.
        out_ch: output channels.
        num_blocks: residual bottleneck blocks after the strided convolution (3 in DCAE).
    """

    def __init__(self, in_ch: int, out_ch: int, num_blocks: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size=5, stride=2, padding=2)
        self.blocks = nn.Sequential(*[ResidualBottleneckBlock(out_ch) for _ in range(num_blocks)])

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, in_ch, H, W] -> [B, out_ch, ⌈H/2⌉, ⌈W/2⌉]."""
        return self.blocks(self.conv(x))


class ResidualBottleneckBlockWithUpsample(nn.Module):
    """``num_blocks`` residual bottleneck blocks followed by a 5×5 stride-2 transposed convolution (H → 2H).

    Args:
        in_ch: input channels.
        out_ch: output channels.
        num_blocks: residual bottleneck blocks before the upsampling (3 in DCAE).
    """

    def __init__(self, in_ch: int, out_ch: int, num_blocks: int = 3):
        super().__init__()
        self.blocks = nn.Sequential(*[ResidualBottleneckBlock(in_ch) for _ in range(num_blocks)])
        self.conv = nn.ConvTranspose2d(in_ch, out_ch, kernel_size=5, stride=2, padding=2, output_padding=1)

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, in_ch, H, W] -> [B, out_ch, 2H, 2W]."""
        return self.conv(self.blocks(x))


class Scale(nn.Module):
    """A learnable per-channel scale on the last axis (DCAE's learnable residual scales).

    Args:
        dim: channels (size of the last axis).
        init_value: initial scale.
    """

    def __init__(self, dim: int, init_value: float = 1.0):
        super().__init__()
        self.scale = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x: Tensor) -> Tensor:
        """x: [..., dim] -> [..., dim]."""
        return x * self.scale


class ConvGELU(nn.Module):
    """The gated ConvGELU MLP of DCAE's Swin blocks, channels-last.

    ``fc1`` maps C → 2·h; one half goes through a 3×3 depth-wise convolution and GELU and gates the other
    half; ``fc2`` maps h → C_out. ``hidden`` is the nominal hidden width; the gated width is ``hidden // 2``
    (so the parameter count matches an ungated MLP of width ``hidden``).

    Args:
        dim: input channels.
        hidden: nominal hidden width (DCAE: 4·dim).
        out_dim: output channels (default: ``dim``).
    """

    def __init__(self, dim: int, hidden: int, out_dim: int | None = None):
        super().__init__()
        half = max(hidden // 2, 1)
        self.fc1 = nn.Linear(dim, 2 * half)
        self.dwconv = nn.Conv2d(half, half, kernel_size=3, padding=1, groups=half)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(half, out_dim or dim)

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, H, W, C] -> [B, H, W, C_out]."""
        gate, value = self.fc1(x).chunk(2, dim=-1)
        gate = self.dwconv(gate.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return self.fc2(self.act(gate) * value)
