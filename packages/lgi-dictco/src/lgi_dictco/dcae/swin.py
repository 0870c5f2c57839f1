"""Swin stages of DCAE's transforms: (shifted) window attention with relative position bias.

After Liu et al., "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows" (ICCV 2021),
in the form DCAE (Lu et al., CVPR 2025) uses: each layer is
``x = s1·x + WMSA(LN(x))`` then ``x = s2·x + ConvGELU(LN(x))`` with learnable residual scales s1, s2;
layers alternate regular (W) and shifted (SW) windows; a stage ends with a 3×3 convolution and a residual
connection around the whole stage. Attention runs through
:func:`torch.nn.functional.scaled_dot_product_attention`, in chunks of windows so that memory stays
bounded on large images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lgi_dictco.dcae.layers import ConvGELU, Scale

# Upper bound on attention scores held at once (windows × heads × P × P elements): 2**25 floats = 128 MiB.
_MAX_SCORES_PER_CHUNK = 1 << 25


def _relative_position_index(window: int) -> Tensor:
    """Index into the (2w−1)² bias table for every (query, key) pair of a w×w window: [w², w²] int64."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


class WindowAttention(nn.Module):
    """Multi-head self-attention inside non-overlapping windows, optionally cyclically shifted.

    Args:
        dim: channels.
        head_dim: channels per head (``dim`` must be a multiple).
        window: window side in pixels.
        shifted: shift the grid by ``window // 2`` before partitioning (the SW layers) and mask
            attention between pixels that the cyclic shift brought together from opposite borders.
    """

    def __init__(self, dim: int, head_dim: int, window: int, shifted: bool):
        super().__init__()
        if dim % head_dim:
            raise ValueError(f"window attention: dim {dim} is not a multiple of head_dim {head_dim}")
        self.dim, self.head_dim, self.window, self.shifted = dim, head_dim, window, shifted
        self.heads = dim // head_dim
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias = nn.Parameter(torch.zeros((2 * window - 1) ** 2, self.heads))
        nn.init.trunc_normal_(self.relative_position_bias, std=0.02)
        self.register_buffer("relative_position_index", _relative_position_index(window), persistent=False)

    def _bias(self) -> Tensor:
        """Relative position bias: [heads, P, P] with P = window²."""
        p = self.window * self.window
        return (
            self.relative_position_bias[self.relative_position_index.reshape(-1)]
            .reshape(p, p, -1)
            .permute(2, 0, 1)
        )

    def _shift_mask(self, win_ids: Tensor, n_h: int, n_w: int) -> Tensor:
        """True where a (query, key) pair of a shifted window must not attend: [len(win_ids), 1, P, P]."""
        w, s = self.window, self.window // 2
        pos = torch.arange(w, device=win_ids.device)
        last_row = (win_ids // n_w) == n_h - 1  # [c]
        last_col = (win_ids % n_w) == n_w - 1
        row_region = last_row[:, None] & (pos[None, :] >= w - s)  # [c, w]
        col_region = last_col[:, None] & (pos[None, :] >= w - s)
        label = (2 * row_region[:, :, None].int() + col_region[:, None, :].int()).reshape(len(win_ids), -1)
        return (label[:, :, None] != label[:, None, :]).unsqueeze(1)

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, H, W, C] with H, W multiples of the window -> [B, H, W, C]."""
        b, h, w, c = x.shape
        p, s = self.window, self.window // 2
        if h % p or w % p:
            raise ValueError(f"window attention: {h}x{w} is not a multiple of the window {p}")
        if self.shifted:
            x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))
        n_h, n_w = h // p, w // p
        n_win = n_h * n_w
        x = x.reshape(b, n_h, p, n_w, p, c).permute(0, 1, 3, 2, 4, 5).reshape(b * n_win, p * p, c)
        qkv = self.qkv(x).reshape(b * n_win, p * p, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [B·nW, heads, P, d]
        bias = self._bias().unsqueeze(0).to(q.dtype)  # [1, heads, P, P]
        chunk = max(1, _MAX_SCORES_PER_CHUNK // (self.heads * p**4))
        outs = []
        for start in range(0, b * n_win, chunk):
            stop = min(start + chunk, b * n_win)
            mask = bias
            if self.shifted:
                ids = torch.arange(start, stop, device=x.device) % n_win
                blocked = self._shift_mask(ids, n_h, n_w)
                mask = bias.masked_fill(blocked, float("-inf"))
            outs.append(
                F.scaled_dot_product_attention(q[start:stop], k[start:stop], v[start:stop], attn_mask=mask)
            )
        out = torch.cat(outs) if len(outs) > 1 else outs[0]
        out = self.proj(out.transpose(1, 2).reshape(b * n_win, p * p, c))
        out = out.reshape(b, n_h, n_w, p, p, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)
        if self.shifted:
            out = torch.roll(out, shifts=(s, s), dims=(1, 2))
        return out


class SwinLayer(nn.Module):
    """One transformer layer with learnable residual scales and a ConvGELU MLP (DCAE's ResScaleConvGate).

    Args:
        dim: channels.
        head_dim: channels per attention head.
        window: window side.
        shifted: shifted-window (SW) layer.
        mlp_rate: nominal MLP width as a multiple of ``dim``.
    """

    def __init__(self, dim: int, head_dim: int, window: int, shifted: bool, mlp_rate: int = 4):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, head_dim, window, shifted)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = ConvGELU(dim, mlp_rate * dim)
        self.res_scale1 = Scale(dim)
        self.res_scale2 = Scale(dim)

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, H, W, C] -> [B, H, W, C]."""
        x = self.res_scale1(x) + self.attn(self.norm1(x))
        return self.res_scale2(x) + self.mlp(self.norm2(x))


class SwinStage(nn.Module):
    """``depth`` Swin layers alternating W / SW windows, a 3×3 convolution, and a residual around it all.

    Inputs of any size are zero-padded (bottom, right) to a multiple of the window and cropped back.

    Args:
        dim: channels.
        head_dim: channels per attention head.
        window: window side.
        depth: number of layers (≥ 1).
        mlp_rate: nominal MLP width of the layers, in multiples of ``dim``.
    """

    def __init__(self, dim: int, head_dim: int, window: int, depth: int, mlp_rate: int = 4):
        super().__init__()
        if depth < 1:
            raise ValueError(f"a Swin stage needs at least one layer, got depth {depth}")
        self.window = window
        self.layers = nn.ModuleList(
            SwinLayer(dim, head_dim, window, bool(i % 2), mlp_rate) for i in range(depth)
        )
        self.conv = nn.Conv2d(dim, dim, kernel_size=3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, C, H, W] -> [B, C, H, W]."""
        h, w = x.shape[-2:]
        pad_b, pad_r = (-h) % self.window, (-w) % self.window
        if pad_b or pad_r:
            x = F.pad(x, (0, pad_r, 0, pad_b))
        t = x.permute(0, 2, 3, 1)
        for layer in self.layers:
            t = layer(t)
        t = self.conv(t.permute(0, 3, 1, 2))
        return (t + x)[:, :, :h, :w]
