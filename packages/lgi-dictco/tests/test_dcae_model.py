"""DCAE model: attention against naive references, shapes, likelihoods, gradients, config inference."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import lgi_dictco.dcae.swin as swin
from lgi_dictco.dcae import (
    DCAE,
    MODEL_IDS,
    DCAEConfig,
    build_model,
    config_from_state_dict,
    get_config,
    list_models,
)
from lgi_dictco.dcae.dictionary import DictionaryCrossAttention
from lgi_dictco.dcae.registry import model_id, name_of_config

SIZES = [(64, 64), (37, 53), (16, 16), (1, 1)]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def _naive_window_attention(attn: swin.WindowAttention, x: torch.Tensor) -> torch.Tensor:
    """Swin window attention written out with explicit loops over windows and an explicit region mask."""
    b, h, w, c = x.shape
    p, s = attn.window, attn.window // 2
    if attn.shifted:
        x = torch.roll(x, (-s, -s), (1, 2))
    # Region of every pixel after the cyclic shift: pixels that wrapped around get their own label.
    rows = torch.zeros(h, dtype=torch.long)
    cols = torch.zeros(w, dtype=torch.long)
    if attn.shifted:
        rows[h - s :] = 1
        cols[w - s :] = 1
    label = 2 * rows[:, None] + cols[None, :]
    out = torch.zeros_like(x)
    heads, d = attn.heads, attn.head_dim
    table = attn.relative_position_bias
    for bi in range(b):
        for i in range(0, h, p):
            for j in range(0, w, p):
                t = x[bi, i : i + p, j : j + p].reshape(p * p, c)
                q, k, v = attn.qkv(t).reshape(p * p, 3, heads, d).permute(1, 2, 0, 3)
                scores = q @ k.transpose(-1, -2) / math.sqrt(d)
                coords = [(r, cc) for r in range(p) for cc in range(p)]
                bias = torch.stack(
                    [
                        torch.stack(
                            [
                                table[(r1 - r2 + p - 1) * (2 * p - 1) + (c1 - c2 + p - 1)]
                                for (r2, c2) in coords
                            ]
                        )
                        for (r1, c1) in coords
                    ]
                )  # [P, P, heads]
                scores = scores + bias.permute(2, 0, 1)
                lab = label[i : i + p, j : j + p].reshape(-1)
                scores = scores.masked_fill(lab[:, None] != lab[None, :], float("-inf"))
                o = torch.softmax(scores, -1) @ v  # [heads, P, d]
                out[bi, i : i + p, j : j + p] = attn.proj(o.transpose(0, 1).reshape(p * p, c)).reshape(
                    p, p, c
                )
    if attn.shifted:
        out = torch.roll(out, (s, s), (1, 2))
    return out


@pytest.mark.parametrize("shifted", [False, True])
@pytest.mark.parametrize("grid", [(8, 8), (16, 24)])
def test_window_attention_matches_naive_reference(shifted, grid):
    torch.manual_seed(0)
    attn = swin.WindowAttention(dim=16, head_dim=8, window=4, shifted=shifted)
    with torch.no_grad():
        attn.relative_position_bias.normal_(0, 1)  # make the bias matter
    x = torch.randn(2, *grid, 16)
    with torch.no_grad():
        expected = _naive_window_attention(attn, x)
        got = attn(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_window_attention_chunking_gives_identical_results(monkeypatch):
    torch.manual_seed(1)
    attn = swin.WindowAttention(dim=16, head_dim=8, window=4, shifted=True)
    x = torch.randn(2, 16, 24, 16)
    with torch.no_grad():
        whole = attn(x)
        monkeypatch.setattr(swin, "_MAX_SCORES_PER_CHUNK", 2 * 256 * 5)  # 5 windows per chunk
        chunked = attn(x)
    torch.testing.assert_close(chunked, whole, rtol=1e-6, atol=1e-6)


def test_swin_stage_zero_pads_to_the_window_and_crops():
    torch.manual_seed(2)
    stage = swin.SwinStage(dim=16, head_dim=8, window=8, depth=2).eval()
    x = torch.randn(1, 16, 13, 21)

    def explicit(t):  # the documented rule: zero-pad bottom/right, layers, 3x3 conv, residual, crop
        padded = F.pad(t, (0, (-t.shape[3]) % 8, 0, (-t.shape[2]) % 8))
        h = padded.permute(0, 2, 3, 1)
        for layer in stage.layers:
            h = layer(h)
        return (stage.conv(h.permute(0, 3, 1, 2)) + padded)[:, :, : t.shape[2], : t.shape[3]]

    with torch.no_grad():
        y = stage(x)
        torch.testing.assert_close(y, explicit(x))
    assert y.shape == x.shape
    assert [layer.attn.shifted for layer in stage.layers] == [False, True]


def test_dictionary_attention_matches_naive_reference():
    torch.manual_seed(3)
    m = DictionaryCrossAttention(input_dim=12, output_dim=10, dict_dim=16, heads=2, mlp_rate=2)
    with torch.no_grad():
        m.temperature.uniform_(0.5, 2.0)
    dictionary = torch.randn(7, 16)
    q = torch.randn(2, 2, 5, 8)
    with torch.no_grad():
        got = m._attend(q * m.temperature, dictionary)
        dn = m.norm_dict(dictionary)
        k = m.k_proj(dn).reshape(7, 2, 8).transpose(0, 1)
        v = dn.reshape(7, 2, 8).transpose(0, 1)
        probs = torch.softmax(
            (q @ k.transpose(-1, -2)) * m.temperature, dim=-1
        )  # learned temperature, no 1/sqrt(d)
        expected = probs @ v
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_moe_router_selects_experts():
    """With the router forced to one expert, the MoE output equals attention over that expert alone."""
    torch.manual_seed(4)
    m = DictionaryCrossAttention(
        input_dim=12, output_dim=10, dict_dim=16, heads=2, mlp_rate=2, num_experts=3, expert_entries=5
    )
    x = torch.randn(1, 12, 4, 6)
    with torch.no_grad():
        last = m.router[-1]
        last.weight.zero_()
        last.bias.copy_(torch.tensor([0.0, 80.0, 0.0]))
        forced = m(x)
        single = DictionaryCrossAttention(12, 10, 16, 2, 2)
        single.load_state_dict(
            {k: v for k, v in m.state_dict().items() if not k.startswith(("experts", "router"))}
        )
        expected = single(x, m.experts[1])
        last.bias.copy_(torch.tensor([0.0, 0.0, 80.0]))
        other = m(x)
    torch.testing.assert_close(forced, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(other, forced)


@pytest.mark.parametrize("name", ["dcae-tiny", "dcae-moe-tiny"])
@pytest.mark.parametrize("size", SIZES)
def test_forward_shapes_and_likelihoods(name, size):
    torch.manual_seed(5)
    model = build_model(name)
    x = torch.rand(2, 3, *size)
    out = model(x)
    cfg = model.config
    yh, yw = -(-size[0] // 16), -(-size[1] // 16)
    assert out["x_hat"].shape == x.shape
    assert out["likelihoods"]["y"].shape == (2, cfg.M, yh, yw)
    assert out["likelihoods"]["z"].shape == (2, cfg.N, -(-yh // 4), -(-yw // 4))
    for lik in out["likelihoods"].values():
        assert torch.isfinite(lik).all()
        assert (lik > 0).all() and (lik <= 1).all()


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(6)
    for name in ("dcae-tiny", "dcae-moe-tiny"):
        model = build_model(name)
        out = model(torch.rand(2, 3, 48, 64))
        bpp = sum(-torch.log2(lik).sum() for lik in out["likelihoods"].values()) / (2 * 48 * 64)
        (bpp + F.mse_loss(out["x_hat"], torch.rand(2, 3, 48, 64))).backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None and not n.endswith("quantiles")]
        assert not missing, missing
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_padding_rule_is_replicate_bottom_right():
    torch.manual_seed(7)
    model = build_model("dcae-tiny").eval()
    x = torch.rand(1, 3, 17, 33)
    padded = F.pad(x, (0, 15, 0, 15), mode="replicate")
    assert DCAE.pad(x).shape[-2:] == (32, 48)
    torch.testing.assert_close(DCAE.pad(x), padded)
    with torch.no_grad():
        a = model(x)["x_hat"]
        b = model(padded)["x_hat"][:, :, :17, :33]
    torch.testing.assert_close(a, b)


def test_bad_inputs_are_rejected():
    model = build_model("dcae-tiny")
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        model(torch.rand(3, 16, 16))
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        model(torch.rand(1, 1, 16, 16))
    with pytest.raises(ValueError, match="float"):
        model(torch.zeros(1, 3, 16, 16, dtype=torch.uint8))


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"M": 42}, "multiple of num_slices"),
        ({"num_experts": 1}, "num_experts"),
        ({"head_dims": (8, 8, 8, 8, 8, 7)}, "head_dims"),
        ({"feature_dims": (16, 24)}, "3 values"),
        ({"N": 30}, "hyper_head_dim"),
        ({"dict_heads": 0}, "dict_heads"),
    ],
)
def test_config_validation(changes, match):
    with pytest.raises(ValueError, match=match):
        get_config("dcae-tiny").replace(**changes)


def test_config_normalises_unused_fields():
    cfg = DCAEConfig(num_slices=5, max_support_slices=9)
    assert cfg.max_support_slices == 4 and cfg.expert_entries == 0
    moe = DCAEConfig(num_experts=4, expert_entries=32)
    assert moe.dict_entries == 0 and moe.moe
    assert DCAEConfig.from_dict(moe.to_dict()) == moe
    with pytest.raises(ValueError, match="unknown DCAE config fields"):
        DCAEConfig.from_dict({"M": 320, "wat": 1})


CUSTOM = get_config("dcae-tiny").replace(
    M=48,
    num_slices=4,
    max_support_slices=2,
    feature_dims=(8, 16, 24),
    block_counts=(2, 1, 3),
    res_blocks=0,
    swin_mlp_rate=3,
    hyper_depth=2,
    hyper_window_size=2,
    dict_mlp_rate=3,
    dict_heads=3,
    dict_head_dim=4,
    entropy_hidden=(12, 20),
    dict_entries=9,
)


# Stages left out (0 Swin layers), in the middle too.
SKIPPING = get_config("dcae-tiny").replace(block_counts=(1, 0, 2), head_dims=(8, 4, 8, 8, 4, 8))


@pytest.mark.parametrize(
    "config",
    [get_config("dcae-tiny"), get_config("dcae-moe-tiny"), CUSTOM, get_config("dcae-small"), SKIPPING],
    ids=["tiny", "moe-tiny", "custom", "small", "skipping"],
)
def test_from_state_dict_infers_sizes(config):
    torch.manual_seed(8)
    model = DCAE(config).eval()
    state = model.state_dict()
    assert config_from_state_dict(state) == config
    ddp_style = {f"module.{k}": v for k, v in state.items()}
    clone = DCAE.from_state_dict(ddp_style).eval()
    assert clone.config == config
    x = torch.rand(1, 3, 40, 24)
    with torch.no_grad():
        torch.testing.assert_close(clone(x)["x_hat"], model(x)["x_hat"], rtol=0, atol=0)
    assert clone.fingerprint() == model.fingerprint()


def test_stages_without_layers_are_left_out():
    cfg = DCAEConfig(block_counts=(0, 2, 12))
    # The left-out stages (g_a 1 and its mirror g_s 3) have no heads: stored as 0, so configs compare equal.
    assert cfg.head_dims == (0, 16, 32, 32, 16, 0)
    assert cfg == DCAEConfig(block_counts=(0, 2, 12), head_dims=(5, 16, 32, 32, 16, 7))
    model = DCAE(get_config("dcae-small"))
    assert isinstance(model.g_a[1], torch.nn.Identity) and isinstance(model.g_s[5], torch.nn.Identity)
    assert not any(k.startswith(("g_a.1.", "g_s.5.")) for k in model.state_dict())
    with pytest.raises(ValueError, match="block_counts"):
        DCAEConfig(block_counts=(-1, 2, 12))
    with pytest.raises(ValueError, match="no Swin stage"):
        config_from_state_dict(
            DCAE(get_config("dcae-tiny").replace(block_counts=(0, 0, 0), head_dims=(8,) * 6)).state_dict()
        )


def test_from_state_dict_rejects_foreign_weights():
    with pytest.raises(ValueError, match="not a DCAE state dict"):
        config_from_state_dict({"conv.weight": torch.zeros(3, 3, 1, 1)})


def test_registry_is_frozen_and_named():
    # Pinned here on purpose, not read from the registry: ids are written into files and never change.
    frozen = ["custom", "dcae-paper", "dcae-moe-paper", "dcae-tiny", "dcae-moe-tiny", "dcae-small"]
    assert dict(MODEL_IDS) == dict(enumerate(frozen))
    with pytest.raises(TypeError):
        MODEL_IDS[6] = "x"  # type: ignore[index]
    assert list_models() == frozen[1:]
    assert model_id("dcae-moe-tiny") == 4
    assert name_of_config(get_config("dcae-tiny")) == "dcae-tiny"
    assert name_of_config(CUSTOM) == "custom"
    with pytest.raises(KeyError, match="known: dcae-paper"):
        get_config("dcae-huge")


def test_paper_presets_have_the_paper_sizes():
    paper = build_model("dcae-paper")
    cfg = paper.config
    assert (cfg.N, cfg.M, cfg.num_slices, cfg.dict_entries, cfg.dict_dim, cfg.window_size) == (
        192,
        320,
        5,
        128,
        640,
        8,
    )
    assert paper.dictionary.shape == (128, 640)
    assert sum(p.numel() for p in paper.parameters()) == 119_400_351
    moe = build_model("dcae-moe-paper")
    assert moe.slices[0].attention.experts.shape == (4, 64, 640)
    assert sum(p.numel() for p in moe.parameters()) == 120_653_651
    tiny = build_model("dcae-tiny")
    assert sum(p.numel() for p in tiny.parameters()) < 1_500_000


def test_likelihoods_stay_float32_under_autocast():
    torch.manual_seed(9)
    model = build_model("dcae-tiny")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.rand(1, 3, 32, 48))
    assert out["x_hat"].dtype == torch.bfloat16  # the transforms ran in low precision ...
    for lik in out["likelihoods"].values():  # ... the entropy model did not (1e-9 underflows in half precision)
        assert lik.dtype == torch.float32 and (lik > 0).all()
