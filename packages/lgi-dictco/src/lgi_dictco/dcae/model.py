"""The DCAE learned image codec.

Lu et al., "Learned Image Compression with Dictionary-based Entropy Model" (CVPR 2025). An analysis
transform of residual bottleneck blocks and Swin stages maps an image to a latent y with M channels at
1/16 of its size; a hyper-analysis maps y to z (N channels, 1/64), coded with a factorized
``EntropyBottleneck``. Two hyper-synthesis branches turn ẑ into latent scales and means. y is coded in
``num_slices`` channel slices with a ``GaussianConditional`` (the 64-level scale table 0.11 … 256);
each slice's mean and scale come from the hyperprior and the earlier slices, enriched by dictionary
cross-attention (:mod:`lgi_dictco.dcae.dictionary`); latent residual prediction adds
``0.5·tanh(r)`` to each dequantised slice. Training uses straight-through rounding.

Inputs of any size: the image is padded on the bottom and right by replicating its edge pixels to a
multiple of 16, and the reconstruction is cropped back. The hyper path rounds sizes up
(z is ⌈y/4⌉), and the hyper-synthesis output is cropped to y, so no padding to 64 is needed.
"""

from __future__ import annotations

import math
import zlib

from lgi_dictco import _compressai_all  # noqa: F401 - first: compressai loads quietly, sharing ans

# isort: split
import torch
import torch.nn.functional as F
from compressai.ans import BufferedRansEncoder
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.models import CompressionModel
from torch import Tensor, nn

from lgi_dictco.dcae._rans import BoundedRansDecoder
from lgi_dictco.dcae.config import DCAEConfig, config_from_state_dict, strip_prefix
from lgi_dictco.dcae.dictionary import DictionaryCrossAttention
from lgi_dictco.dcae.layers import ResidualBottleneckBlockWithStride, ResidualBottleneckBlockWithUpsample
from lgi_dictco.dcae.swin import SwinStage

#: The image is padded to a multiple of this (the total stride of the analysis transform).
PAD_MULTIPLE = 16
#: The Gaussian conditional's scale table: 64 scales, log-spaced from 0.11 to 256.
SCALES_MIN, SCALES_MAX, SCALES_LEVELS = 0.11, 256.0, 64


def get_scale_table() -> Tensor:
    """The 64 standard deviations the Gaussian conditional quantises its scales to: [64]."""
    return torch.exp(torch.linspace(math.log(SCALES_MIN), math.log(SCALES_MAX), SCALES_LEVELS))


def ste_round(x: Tensor) -> Tensor:
    """Round in the forward pass, identity gradient in the backward pass."""
    return torch.round(x) - x.detach() + x


def latent_shape(height: int, width: int) -> tuple[int, int]:
    """Spatial size of y for an image of ``height × width``: (⌈H/16⌉, ⌈W/16⌉)."""
    return -(-height // PAD_MULTIPLE), -(-width // PAD_MULTIPLE)


def hyper_shape(y_shape: tuple[int, int]) -> tuple[int, int]:
    """Spatial size of z for a latent of ``y_shape``: (⌈h/4⌉, ⌈w/4⌉)."""
    return -(-y_shape[0] // 4), -(-y_shape[1] // 4)


def _head(in_ch: int, hidden: tuple[int, int], out_ch: int) -> nn.Sequential:
    """The mean / scale / LRP heads: three 3×3 convolutions with GELU between them."""
    return nn.Sequential(
        nn.Conv2d(in_ch, hidden[0], 3, padding=1),
        nn.GELU(),
        nn.Conv2d(hidden[0], hidden[1], 3, padding=1),
        nn.GELU(),
        nn.Conv2d(hidden[1], out_ch, 3, padding=1),
    )


class SliceModel(nn.Module):
    """The entropy parameters of one slice: dictionary cross-attention, mean, scale and LRP heads."""

    def __init__(self, cfg: DCAEConfig, index: int):
        super().__init__()
        query = 2 * cfg.M + cfg.slice_channels * cfg.support_slices(index)
        self.attention = DictionaryCrossAttention(
            query, cfg.M, cfg.dict_dim, cfg.dict_heads, cfg.dict_mlp_rate, cfg.num_experts, cfg.expert_entries
        )
        self.mean = _head(query + cfg.M, cfg.entropy_hidden, cfg.slice_channels)
        self.scale = _head(query + cfg.M, cfg.entropy_hidden, cfg.slice_channels)
        self.lrp = _head(query + cfg.M + cfg.slice_channels, cfg.entropy_hidden, cfg.slice_channels)

    def params(self, query: Tensor, dictionary: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """query: [B, Cq, h, w] -> (support [B, Cq+M, h, w], mean, scale [B, slice, h, w])."""
        support = torch.cat([query, self.attention(query, dictionary)], dim=1)
        return support, self.mean(support), self.scale(support)

    def refine(self, support: Tensor, y_hat: Tensor) -> Tensor:
        """Latent residual prediction: ŷ + 0.5·tanh(lrp([support, ŷ]))."""
        return y_hat + 0.5 * torch.tanh(self.lrp(torch.cat([support, y_hat], dim=1)))


class DCAE(CompressionModel):
    """DCAE (Lu et al., CVPR 2025) with a single shared dictionary or a mixture of expert dictionaries.

    The codec contract: ``forward(x) -> {"x_hat", "likelihoods"}``; ``update()`` once after training or
    loading; ``compress(x) -> {"strings", "shape", "size"}``; ``decompress(strings, shape, size) ->
    {"x_hat"}``. Every image of a batch is coded independently, so a single-image decode reproduces it
    bit for bit.

    Args:
        config: the sizes (default: the paper's).
    """

    def __init__(self, config: DCAEConfig | None = None):
        super().__init__()
        cfg = config or DCAEConfig()
        self.config = cfg
        f0, f1, f2 = cfg.feature_dims
        b0, b1, b2 = cfg.block_counts
        hd = cfg.head_dims
        w, r = cfg.window_size, cfg.res_blocks

        def swin(dim: int, head_dim: int, depth: int) -> nn.Module:
            # A stage of 0 layers is left out; the Identity keeps the Sequential's indices (and keys).
            return SwinStage(dim, head_dim, w, depth, cfg.swin_mlp_rate) if depth else nn.Identity()

        self.g_a = nn.Sequential(
            ResidualBottleneckBlockWithStride(3, f0, r),
            swin(f0, hd[0], b0),
            ResidualBottleneckBlockWithStride(f0, f1, r),
            swin(f1, hd[1], b1),
            ResidualBottleneckBlockWithStride(f1, f2, r),
            swin(f2, hd[2], b2),
            nn.Conv2d(f2, cfg.M, kernel_size=5, stride=2, padding=2),
        )
        self.g_s = nn.Sequential(
            nn.ConvTranspose2d(cfg.M, f2, kernel_size=5, stride=2, padding=2, output_padding=1),
            swin(f2, hd[3], b2),
            ResidualBottleneckBlockWithUpsample(f2, f1, r),
            swin(f1, hd[4], b1),
            ResidualBottleneckBlockWithUpsample(f1, f0, r),
            swin(f0, hd[5], b0),
            ResidualBottleneckBlockWithUpsample(f0, 3, r),
        )
        n = cfg.N
        self.h_a = nn.Sequential(
            ResidualBottleneckBlockWithStride(cfg.M, n, r),
            SwinStage(n, cfg.hyper_head_dim, cfg.hyper_window_size, cfg.hyper_depth, cfg.swin_mlp_rate),
            nn.Conv2d(n, n, kernel_size=3, stride=2, padding=1),
        )

        def hyper_synthesis() -> nn.Sequential:
            return nn.Sequential(
                nn.ConvTranspose2d(n, n, kernel_size=3, stride=2, padding=1, output_padding=1),
                SwinStage(n, cfg.hyper_head_dim, cfg.hyper_window_size, cfg.hyper_depth, cfg.swin_mlp_rate),
                ResidualBottleneckBlockWithUpsample(n, cfg.M, r),
            )

        self.h_s_scales = hyper_synthesis()
        self.h_s_means = hyper_synthesis()
        if not cfg.moe:
            self.dictionary = nn.Parameter(torch.randn(cfg.dict_entries, cfg.dict_dim))
        self.slices = nn.ModuleList(SliceModel(cfg, i) for i in range(cfg.num_slices))
        self.entropy_bottleneck = EntropyBottleneck(n)
        self.gaussian_conditional = GaussianConditional(None)
        self._fingerprint: int | None = None

    # ----------------------------------------------------------------------------------------------
    # helpers

    @property
    def device(self) -> torch.device:
        """The device of the model's parameters (decoding runs there)."""
        return self.g_a[0].conv.weight.device

    def _shared_dictionary(self) -> Tensor | None:
        return None if self.config.moe else self.dictionary

    @staticmethod
    def _check_image(x: Tensor) -> None:
        if not isinstance(x, Tensor) or x.dim() != 4 or x.shape[1] != 3:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"DCAE expects images [B, 3, H, W], got {shape}")
        if not x.is_floating_point():
            raise ValueError(f"DCAE expects float images in [0, 1], got dtype {x.dtype}")
        if x.shape[0] < 1 or x.shape[2] < 1 or x.shape[3] < 1:
            raise ValueError(f"DCAE got an empty image batch {tuple(x.shape)}")

    @staticmethod
    def pad(x: Tensor) -> Tensor:
        """Replicate-pad [B, 3, H, W] on the bottom and right to multiples of 16."""
        h, w = x.shape[-2:]
        pad_b, pad_r = (-h) % PAD_MULTIPLE, (-w) % PAD_MULTIPLE
        return F.pad(x, (0, pad_r, 0, pad_b), mode="replicate") if pad_b or pad_r else x

    def _hyper(self, z_hat: Tensor, y_shape: tuple[int, int]) -> tuple[Tensor, Tensor]:
        h, w = y_shape
        return self.h_s_scales(z_hat)[:, :, :h, :w], self.h_s_means(z_hat)[:, :, :h, :w]

    def _query(self, index: int, scales: Tensor, means: Tensor, y_hat_slices: list[Tensor]) -> Tensor:
        support = y_hat_slices[: self.config.support_slices(index)]
        return torch.cat([scales, means, *support], dim=1)

    def fingerprint(self) -> int:
        """CRC32 of the parameters (names and float32 values): identifies the exact weights a file needs.

        Cached; call :meth:`reset_fingerprint` after changing the weights.
        """
        if self._fingerprint is None:
            crc = 0
            for name, p in sorted(self.named_parameters()):
                crc = zlib.crc32(name.encode(), crc)
                crc = zlib.crc32(p.detach().to("cpu", torch.float32).contiguous().numpy().tobytes(), crc)
            self._fingerprint = crc
        return self._fingerprint

    def reset_fingerprint(self) -> None:
        """Forget the cached :meth:`fingerprint` (after training or loading new weights)."""
        self._fingerprint = None

    def load_state_dict(self, state_dict, strict: bool = True):
        """Load weights (a ``module.`` prefix is stripped); entropy-coder tables are resized as needed."""
        self.reset_fingerprint()
        return super().load_state_dict(strip_prefix(state_dict), strict=strict)

    @classmethod
    def from_state_dict(cls, state_dict) -> DCAE:
        """Build a model whose sizes are inferred from ``state_dict`` and load it (strictly)."""
        model = cls(config_from_state_dict(state_dict))
        model.load_state_dict(state_dict)
        return model

    def update(
        self, scale_table: Tensor | None = None, force: bool = False, update_quantiles: bool = False
    ) -> bool:
        """Build the entropy coder's CDF tables (the scale table defaults to 0.11 … 256, 64 levels).

        ``update_quantiles`` re-estimates the entropy bottleneck's quantiles by bisection (compressai),
        which changes the weights and therefore the :meth:`fingerprint`.
        """
        if update_quantiles:
            self.reset_fingerprint()
        table = get_scale_table() if scale_table is None else scale_table
        return super().update(scale_table=table, force=force, update_quantiles=update_quantiles)

    def _check_updated(self) -> None:
        for module in (self.entropy_bottleneck, self.gaussian_conditional):
            if module._offset.numel() == 0:
                raise RuntimeError(
                    "the DCAE entropy coder has no CDF tables yet: call model.update() after "
                    "training or loading weights, before compress() / decompress()"
                )

    # ----------------------------------------------------------------------------------------------
    # the codec

    def forward(self, x: Tensor) -> dict:
        """Training / estimation pass.

        Args:
            x: images [B, 3, H, W] in [0, 1], any H, W.

        Returns:
            ``{"x_hat": [B, 3, H, W] (not clamped),
            "likelihoods": {"y": [B, M, h, w], "z": [B, N, ⌈h/4⌉, ⌈w/4⌉]}}``
            with likelihoods in (0, 1].
        """
        self._check_image(x)
        h, w = x.shape[-2:]
        y = self.g_a(self.pad(x))
        z = self.h_a(y)
        # Likelihoods stay in float32 under autocast: float16 cannot hold the 1e-9 likelihood floor.
        with torch.autocast(z.device.type, enabled=False):
            _, z_likelihoods = self.entropy_bottleneck(z.float())
        medians = self.entropy_bottleneck._get_medians()
        z_hat = ste_round(z - medians) + medians
        scales, means = self._hyper(z_hat, tuple(y.shape[-2:]))
        dictionary = self._shared_dictionary()
        y_hat_slices: list[Tensor] = []
        likelihoods = []
        for i, y_slice in enumerate(y.chunk(self.config.num_slices, dim=1)):
            model = self.slices[i]
            support, mu, sigma = model.params(self._query(i, scales, means, y_hat_slices), dictionary)
            with torch.autocast(y.device.type, enabled=False):
                _, lik = self.gaussian_conditional(y_slice.float(), sigma.float(), mu.float())
            likelihoods.append(lik)
            y_hat_slices.append(model.refine(support, ste_round(y_slice - mu) + mu))
        x_hat = self.g_s(torch.cat(y_hat_slices, dim=1))[:, :, :h, :w]
        return {"x_hat": x_hat, "likelihoods": {"y": torch.cat(likelihoods, dim=1), "z": z_likelihoods}}

    @torch.no_grad()
    def compress(self, x: Tensor) -> dict:
        """Entropy-code images into rANS bitstreams.

        Args:
            x: images [B, 3, H, W] in [0, 1], any H, W.

        Returns:
            ``{"strings": [y_strings, z_strings], "shape": (h, w) of y, "size": (H, W)}`` with one
            ``bytes`` per image in each list.
        """
        self._check_image(x)
        self._check_updated()
        y_strings, z_strings = [], []
        for i in range(x.shape[0]):
            y_string, z_string, y_shape = self._compress_one(x[i : i + 1])
            y_strings.append(y_string)
            z_strings.append(z_string)
        return {"strings": [y_strings, z_strings], "shape": y_shape, "size": tuple(x.shape[-2:])}

    def _tables(self) -> tuple[list, list, list]:
        gc = self.gaussian_conditional
        return (
            gc.quantized_cdf.tolist(),
            gc.cdf_length.reshape(-1).int().tolist(),
            gc.offset.reshape(-1).int().tolist(),
        )

    def _compress_one(self, x: Tensor) -> tuple[bytes, bytes, tuple[int, int]]:
        y = self.g_a(self.pad(x))
        y_shape = tuple(y.shape[-2:])
        z = self.h_a(y)
        z_string = self.entropy_bottleneck.compress(z)[0]
        z_hat = self._decode_z(z_string, tuple(z.shape[-2:]))
        scales, means = self._hyper(z_hat, y_shape)
        dictionary = self._shared_dictionary()
        cdf, cdf_lengths, offsets = self._tables()
        encoder = BufferedRansEncoder()
        y_hat_slices: list[Tensor] = []
        for i, y_slice in enumerate(y.chunk(self.config.num_slices, dim=1)):
            model = self.slices[i]
            support, mu, sigma = model.params(self._query(i, scales, means, y_hat_slices), dictionary)
            indexes = self.gaussian_conditional.build_indexes(sigma)
            symbols = self.gaussian_conditional.quantize(y_slice, "symbols", mu)
            encoder.encode_with_indexes(
                symbols.reshape(-1).tolist(), indexes.reshape(-1).tolist(), cdf, cdf_lengths, offsets
            )
            y_hat_slices.append(model.refine(support, self.gaussian_conditional.dequantize(symbols, mu)))
        return encoder.flush(), z_string, y_shape

    @torch.no_grad()
    def decompress(self, strings: list, shape: tuple[int, int], size: tuple[int, int] | None = None) -> dict:
        """Decode rANS bitstreams on the model's device.

        Args:
            strings: ``[y_strings, z_strings]`` as returned by :meth:`compress`.
            shape: (h, w) of y.
            size: (H, W) to crop the reconstruction to (default: 16·h × 16·w).

        Returns:
            ``{"x_hat": [B, 3, H, W]}`` clamped to [0, 1].
        """
        self._check_updated()
        y_strings, z_strings = strings
        if len(y_strings) != len(z_strings):
            raise ValueError(f"{len(y_strings)} y strings but {len(z_strings)} z strings")
        h, w = (int(shape[0]), int(shape[1]))
        if h < 1 or w < 1:
            raise ValueError(f"latent shape must be positive, got {shape}")
        out_h, out_w = size if size is not None else (PAD_MULTIPLE * h, PAD_MULTIPLE * w)
        if not (0 < out_h <= PAD_MULTIPLE * h and 0 < out_w <= PAD_MULTIPLE * w):
            raise ValueError(f"image size {out_h}x{out_w} does not fit latent {h}x{w}")
        images = [
            self._decompress_one(ys, zs, (h, w))[:, :, :out_h, :out_w] for ys, zs in zip(y_strings, z_strings)
        ]
        return {"x_hat": torch.cat(images).clamp_(0, 1)}

    def _decode_z(self, z_string: bytes, z_shape: tuple[int, int]) -> Tensor:
        """ẑ [1, N, h, w] from its rANS stream (compressai's ``EntropyBottleneck.decompress``, bounded)."""
        eb = self.entropy_bottleneck
        channels = eb._quantized_cdf.size(0)
        indexes = eb._build_indexes((1, channels, *z_shape)).reshape(-1).tolist()
        decoder = BoundedRansDecoder(z_string, len(indexes), ".dcae z chunk")
        values = decoder.decode(
            indexes,
            eb._quantized_cdf.tolist(),
            eb._cdf_length.reshape(-1).int().tolist(),
            eb._offset.reshape(-1).int().tolist(),
        )
        medians = eb._get_medians().detach().reshape(1, channels, 1, 1)
        symbols = torch.tensor(values, dtype=torch.int32, device=medians.device).reshape(1, channels, *z_shape)
        return eb.dequantize(symbols, medians)

    def _decompress_one(self, y_string: bytes, z_string: bytes, y_shape: tuple[int, int]) -> Tensor:
        z_hat = self._decode_z(z_string, hyper_shape(y_shape))
        scales, means = self._hyper(z_hat, y_shape)
        dictionary = self._shared_dictionary()
        cdf, cdf_lengths, offsets = self._tables()
        decoder = BoundedRansDecoder(y_string, self.config.M * y_shape[0] * y_shape[1], ".dcae y chunk")
        y_hat_slices: list[Tensor] = []
        for i in range(self.config.num_slices):
            model = self.slices[i]
            support, mu, sigma = model.params(self._query(i, scales, means, y_hat_slices), dictionary)
            indexes = self.gaussian_conditional.build_indexes(sigma)
            values = decoder.decode(indexes.reshape(-1).tolist(), cdf, cdf_lengths, offsets)
            symbols = torch.tensor(values, dtype=torch.int32, device=mu.device).reshape(mu.shape)
            y_hat_slices.append(model.refine(support, self.gaussian_conditional.dequantize(symbols, mu)))
        return self.g_s(torch.cat(y_hat_slices, dim=1))
