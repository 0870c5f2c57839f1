"""Dictionary-based cross-attention, the heart of DCAE's entropy model, and its mixture-of-experts form.

Lu et al., "Learned Image Compression with Dictionary-based Entropy Model" (CVPR 2025): the context that
predicts a latent slice's mean and scale comes from cross-attention between the features of what is
already decoded (hyperprior + earlier slices) and a learned dictionary of typical structures shared by
all images. The query is built by multi-scale feature aggregation (MSFA); the keys are a projection of
the layer-normalised dictionary and the values the normalised dictionary itself; each head has a learned
temperature.

The mixture-of-experts variant replaces the single dictionary with K expert dictionaries and a per-pixel
softmax router; the context is the router-weighted sum of the K attention outputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lgi_dictco.dcae.layers import ConvGELU, Scale


class _ConvWithDW(nn.Module):
    """1×1 → GELU → 3×3 depth-wise → GELU → 1×1, channels-first."""

    def __init__(self, dim: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(dim, dim, 1),
            nn.GELU(),
            nn.Conv2d(dim, dim, 3, padding=1, groups=dim),
            nn.GELU(),
            nn.Conv2d(dim, dim, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class MultiScaleAggregation(nn.Module):
    """MSFA: a 1×1 projection, a 3-layer dense block of depth-wise convolutions (growing receptive field)
    fused by a 1×1 convolution, then spatial attention from channel-wise mean and max.

    Args:
        dim: channels.
        layers: dense-block depth (3 in DCAE).
    """

    def __init__(self, dim: int, layers: int = 3):
        super().__init__()
        self.proj_in = nn.Conv2d(dim, dim, 1)
        self.dense = nn.ModuleList(nn.Sequential(nn.GELU(), _ConvWithDW(dim)) for _ in range(layers))
        self.fuse = nn.Conv2d(dim * (layers + 1), dim, 1)
        self.spatial = nn.Conv2d(2, 1, kernel_size=7, padding=3, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, H, W, C] -> [B, H, W, C]."""
        t = self.proj_in(x.permute(0, 3, 1, 2))
        feats = [t]
        for layer in self.dense:
            feats.append(layer(feats[-1]))
        t = self.fuse(torch.cat(feats, dim=1))
        att = torch.sigmoid(
            self.spatial(torch.cat([t.mean(1, keepdim=True), t.amax(1, keepdim=True)], dim=1))
        )
        return (t * att).permute(0, 2, 3, 1)


class DictionaryCrossAttention(nn.Module):
    """Multi-scale dictionary cross-attention (DCAE's MSDCA).

    ``x`` is projected to the dictionary width, refined by MSFA (with a scaled residual), and turned into
    queries; keys come from the layer-normalised dictionary through a linear map and values are the
    normalised dictionary. The attention output passes a linear layer, a ConvGELU MLP (both with scaled
    residuals) and a projection to ``output_dim``.

    With ``num_experts ≥ 2`` the module owns K expert dictionaries ``[K, expert_entries, dict_dim]`` and a
    router (linear → ReLU → linear → softmax over K) on the MSFA features; the attention output is the
    per-pixel router-weighted sum over experts, and the shared ``dictionary`` argument is not used.

    Args:
        input_dim: channels of ``x``.
        output_dim: channels of the result.
        dict_dim: dictionary width (``heads · head_dim``).
        heads: attention heads.
        mlp_rate: nominal MLP width as a multiple of ``dict_dim``.
        num_experts: 0 for the single shared dictionary, K ≥ 2 for the mixture of experts.
        expert_entries: entries per expert dictionary (MoE only).
    """

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        dict_dim: int,
        heads: int,
        mlp_rate: int = 4,
        num_experts: int = 0,
        expert_entries: int = 64,
    ):
        super().__init__()
        if dict_dim % heads:
            raise ValueError(f"dictionary width {dict_dim} is not a multiple of heads {heads}")
        if num_experts == 1 or num_experts < 0:
            raise ValueError(f"num_experts must be 0 (single dictionary) or ≥ 2, got {num_experts}")
        self.heads, self.dict_dim, self.num_experts = heads, dict_dim, num_experts
        self.in_proj = nn.Linear(input_dim, dict_dim)
        self.norm_msfa = nn.LayerNorm(dict_dim)
        self.msfa = MultiScaleAggregation(dict_dim)
        self.res_scale1 = Scale(dict_dim)
        self.norm_q = nn.LayerNorm(dict_dim)
        self.q_proj = nn.Linear(dict_dim, dict_dim)
        self.norm_dict = nn.LayerNorm(dict_dim)
        self.k_proj = nn.Linear(dict_dim, dict_dim)
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.out_linear = nn.Linear(dict_dim, dict_dim)
        self.res_scale2 = Scale(dict_dim)
        self.norm_mlp = nn.LayerNorm(dict_dim)
        self.mlp = ConvGELU(dict_dim, mlp_rate * dict_dim)
        self.res_scale3 = Scale(dict_dim)
        self.out_proj = nn.Linear(dict_dim, output_dim)
        if num_experts:
            self.experts = nn.Parameter(torch.randn(num_experts, expert_entries, dict_dim))
            self.router = nn.Sequential(
                nn.Linear(dict_dim, max(dict_dim // 4, 1)),
                nn.ReLU(),
                nn.Linear(max(dict_dim // 4, 1), num_experts),
            )

    def _attend(self, q: Tensor, dictionary: Tensor) -> Tensor:
        """q: [B, heads, L, d] (temperature applied), dictionary: [E, dict_dim] -> [B, heads, L, d]."""
        d = self.norm_dict(dictionary)
        k = self.k_proj(d).reshape(-1, self.heads, self.dict_dim // self.heads).transpose(0, 1)
        v = d.reshape(-1, self.heads, self.dict_dim // self.heads).transpose(0, 1)
        b = q.shape[0]
        k = k.unsqueeze(0).expand(b, -1, -1, -1)
        v = v.unsqueeze(0).expand(b, -1, -1, -1)
        # The learned per-head temperature replaces 1/sqrt(d): it is folded into q, so scale=1.
        return F.scaled_dot_product_attention(q, k, v, scale=1.0)

    def forward(self, x: Tensor, dictionary: Tensor | None = None) -> Tensor:
        """x: [B, input_dim, H, W], dictionary: [E, dict_dim] (None with experts) -> [B, output_dim, H, W]."""
        b, _, h, w = x.shape
        t = self.in_proj(x.permute(0, 2, 3, 1))
        t = self.msfa(self.norm_msfa(t)) + self.res_scale1(t)
        shortcut = t
        q = self.q_proj(self.norm_q(t)).reshape(b, h * w, self.heads, -1).transpose(1, 2)
        q = q * self.temperature.to(q.dtype)
        if self.num_experts:
            gates = torch.softmax(self.router(shortcut), dim=-1).reshape(b, h * w, self.num_experts)
            ctx = 0
            for e in range(self.num_experts):
                out = self._attend(q, self.experts[e]).transpose(1, 2).reshape(b, h * w, self.dict_dim)
                ctx = ctx + out * gates[..., e : e + 1]
        else:
            if dictionary is None:
                raise ValueError("a single-dictionary cross-attention needs the shared dictionary")
            ctx = self._attend(q, dictionary).transpose(1, 2).reshape(b, h * w, self.dict_dim)
        out = self.out_linear(ctx.reshape(b, h, w, self.dict_dim)) + self.res_scale2(shortcut)
        out = self.mlp(self.norm_mlp(out)) + self.res_scale3(out)
        return self.out_proj(out).permute(0, 3, 1, 2)
