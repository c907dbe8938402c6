"""Connector vs an independent re-derivation of the official Qwen2Connector math; official key names."""

from __future__ import annotations

import math

import pytest
import torch

from model.connector import Step1XEditConnector


def _linear(x, sd, name):
    return x @ sd[f"{name}.weight"].T + sd[f"{name}.bias"]


def _layer_norm(x, sd, name):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-6) * sd[f"{name}.weight"] + sd[f"{name}.bias"]


def _silu(x):
    return x * torch.sigmoid(x)


def reference_connector(sd, x, t, mask, heads, depth, scale_factor):
    """Official math from the state dict alone: explicit softmax attention, [cos, sin] embedding, t*1000."""
    m = mask.float()
    mean = (x * m[..., None]).sum(1) / m.sum(1, keepdim=True)
    pooled_in = mean * (1 + sd["scale_factor"]) if scale_factor else mean
    pooled = _linear(pooled_in, sd, "global_proj_out")

    half = 128
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
    args = (t * 1000)[:, None] * freqs[None]
    t_emb = torch.cat([torch.cos(args), torch.sin(args)], -1)
    t_emb = _linear(_silu(_linear(t_emb, sd, "S.t_embedder.mlp.0")), sd, "S.t_embedder.mlp.2")
    c_emb = _linear(_silu(_linear(mean, sd, "S.c_embedder.linear_1")), sd, "S.c_embedder.linear_2")
    c = t_emb + c_emb

    h = _linear(x, sd, "S.input_embedder")
    batch, length, width = h.shape
    allowed = (m[:, :, None] * m[:, None, :]).bool()  # [B, query, key]
    allowed[:, :, 0] = True  # key column 0 always visible
    for i in range(depth):
        p = f"S.individual_token_refiner.blocks.{i}"
        gates = _linear(_silu(c), sd, f"{p}.adaLN_modulation.1")
        gate_msa, gate_mlp = gates[:, :width], gates[:, width:]
        qkv = _linear(_layer_norm(h, sd, f"{p}.norm1"), sd, f"{p}.self_attn_qkv")
        q, k, v = (qkv[..., j * width : (j + 1) * width].reshape(batch, length, heads, -1) for j in range(3))
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(width // heads)
        scores = scores.masked_fill(~allowed[:, None], float("-inf"))
        attn = torch.einsum("bhqk,bkhd->bqhd", scores.softmax(-1), v).reshape(batch, length, width)
        h = h + _linear(attn, sd, f"{p}.self_attn_proj") * gate_msa[:, None]
        mlp = _linear(
            _silu(_linear(_layer_norm(h, sd, f"{p}.norm2"), sd, f"{p}.mlp.fc1")), sd, f"{p}.mlp.fc2"
        )
        h = h + mlp * gate_mlp[:, None]
    return h, pooled


@pytest.mark.parametrize("use_scale_factor", [False, True])
def test_connector_matches_reference(use_scale_factor: bool) -> None:
    torch.manual_seed(0)
    connector = Step1XEditConnector(48, 64, 4, 2, pooled_dim=24, use_scale_factor=use_scale_factor).eval()
    with torch.no_grad():
        for param in connector.parameters():  # zero-init gates and scale_factor randomised too
            param.copy_(torch.randn_like(param) * 0.1)
    x = torch.randn(3, 10, 48)
    mask = torch.zeros(3, 10, dtype=torch.long)
    mask[0, :] = 1  # full
    mask[1, :4] = 1  # padded
    mask[2, :1] = 1  # a single token
    t = torch.tensor([0.98046875, 0.5, 0.0])
    with torch.no_grad():
        tokens, pooled = connector(x, t, mask)
    ref_tokens, ref_pooled = reference_connector(connector.state_dict(), x, t, mask, 4, 2, use_scale_factor)
    assert not torch.isnan(tokens).any()
    assert torch.allclose(tokens, ref_tokens, atol=1e-5)
    assert torch.allclose(pooled, ref_pooled, atol=1e-5)


def test_padding_does_not_change_kept_tokens_pool() -> None:
    """Masked positions never reach the pooled vector."""
    torch.manual_seed(1)
    connector = Step1XEditConnector(16, 32, 2, 1, pooled_dim=8).eval()
    x = torch.randn(1, 6, 16)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0]])
    noisy = x.clone()
    noisy[:, 3:] += 100
    with torch.no_grad():
        assert torch.allclose(connector(x, torch.ones(1), mask)[1], connector(noisy, torch.ones(1), mask)[1])


@pytest.mark.parametrize(("use_scale_factor", "count"), [(True, 41), (False, 40)])
def test_full_size_official_key_names(use_scale_factor: bool, count: int) -> None:
    """The state dict is the official checkpoint's `connector.*` tensors with the prefix stripped."""
    with torch.device("meta"):
        connector = Step1XEditConnector(use_scale_factor=use_scale_factor)
    shapes = {k: tuple(v.shape) for k, v in connector.state_dict().items()}
    assert len(shapes) == count
    assert shapes["global_proj_out.weight"] == (768, 3584)
    assert shapes["S.input_embedder.weight"] == (4096, 3584)
    assert shapes["S.t_embedder.mlp.0.weight"] == (4096, 256)
    assert shapes["S.c_embedder.linear_1.weight"] == (4096, 3584)
    block = "S.individual_token_refiner.blocks.1"
    assert shapes[f"{block}.self_attn_qkv.weight"] == (12288, 4096)
    assert shapes[f"{block}.mlp.fc1.weight"] == (16384, 4096)
    assert shapes[f"{block}.adaLN_modulation.1.weight"] == (8192, 4096)
    assert ("scale_factor" in shapes) is use_scale_factor
    assert sum(math.prod(s) for s in shapes.values()) == 536_621_824 + int(use_scale_factor)
