"""Step1X-Edit connector: Qwen2.5-VL hidden states -> FLUX text tokens (4096-d) + pooled vector (768-d).

A HunyuanVideo-style single token refiner (`Qwen2Connector` / `SingleTokenRefiner` in the official
`modules/connector_edit.py`). Sub-module names mirror the official ones, so the state dict of this module is
exactly the checkpoint's `connector.*` tensors with the prefix stripped.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

# Official TimestepEmbedder: 256 sinusoidal frequencies, max period 1e4, [cos, sin] order.
TIMESTEP_FREQUENCIES = 256
MAX_PERIOD = 10_000
# The connector sees t in [0,1] scaled by 1000 (commit 055f808, "fix the times embedding bug").
TIMESTEP_SCALE = 1000
# v1.0's learnable global-mean factor starts at 1 + (-0.91) = 0.09.
SCALE_FACTOR_INIT = -(1 - 0.09)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the sequence of the tokens where mask is 1 (sum in the input dtype, as official)."""
    weights = mask.unsqueeze(-1).to(x.dtype)
    return (x * weights).sum(dim=1) / mask.sum(dim=1, keepdim=True).to(x.dtype)


def refiner_attention_mask(mask: torch.Tensor) -> torch.Tensor:
    """[B,1,L,L] boolean mask m_i & m_j with key column 0 always allowed (no all-masked NaN rows)."""
    allowed = mask.bool()
    pair = allowed[:, None, None, :] & allowed[:, None, :, None]
    pair[:, :, :, 0] = True
    return pair


def timestep_embedding(t: torch.Tensor, dim: int = TIMESTEP_FREQUENCIES) -> torch.Tensor:
    """Sinusoidal embedding [cos, sin] of (fractional) timesteps, computed in fp32."""
    half = dim // 2
    freqs = torch.exp(-math.log(MAX_PERIOD) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class TimestepEmbedder(nn.Module):
    def __init__(self, hidden_size: int):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(TIMESTEP_FREQUENCIES, hidden_size), nn.SiLU(), nn.Linear(hidden_size, hidden_size)
        )

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(timestep_embedding(t).to(self.mlp[0].weight.dtype))


class TextProjection(nn.Module):
    def __init__(self, in_channels: int, hidden_size: int):
        super().__init__()
        self.linear_1 = nn.Linear(in_channels, hidden_size)
        self.act_1 = nn.SiLU()
        self.linear_2 = nn.Linear(hidden_size, hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act_1(self.linear_1(x)))


class RefinerMLP(nn.Module):
    def __init__(self, hidden_size: int, mlp_hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(hidden_size, mlp_hidden)
        self.act = nn.SiLU()
        self.fc2 = nn.Linear(mlp_hidden, hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class RefinerBlock(nn.Module):
    """Self-attention + MLP, each residual gated by the conditioning (no shift/scale modulation)."""

    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(hidden_size, eps=1e-6)
        self.self_attn_qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.self_attn_proj = nn.Linear(hidden_size, hidden_size)
        self.norm2 = nn.LayerNorm(hidden_size, eps=1e-6)
        self.mlp = RefinerMLP(hidden_size, int(hidden_size * mlp_ratio))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size))
        nn.init.zeros_(self.adaLN_modulation[1].weight)
        nn.init.zeros_(self.adaLN_modulation[1].bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        gate_msa, gate_mlp = self.adaLN_modulation(c).chunk(2, dim=1)
        batch, length, width = x.shape
        # "B L (K H D) -> K B H L D"
        qkv = self.self_attn_qkv(self.norm1(x)).view(batch, length, 3, self.num_heads, -1)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        attn = attn.transpose(1, 2).reshape(batch, length, width)
        x = x + self.self_attn_proj(attn) * gate_msa.unsqueeze(1)
        return x + self.mlp(self.norm2(x)) * gate_mlp.unsqueeze(1)


class IndividualTokenRefiner(nn.Module):
    def __init__(self, hidden_size: int, num_heads: int, depth: int, mlp_ratio: float):
        super().__init__()
        self.blocks = nn.ModuleList(RefinerBlock(hidden_size, num_heads, mlp_ratio) for _ in range(depth))

    def forward(self, x: torch.Tensor, c: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        attn_mask = refiner_attention_mask(mask)
        for block in self.blocks:
            x = block(x, c, attn_mask)
        return x


class SingleTokenRefiner(nn.Module):
    """Conditioning c = t-embedding + projection of the masked mean; refine every token under c."""

    def __init__(self, in_channels: int, hidden_size: int, num_heads: int, depth: int, mlp_ratio: float):
        super().__init__()
        self.input_embedder = nn.Linear(in_channels, hidden_size)
        self.t_embedder = TimestepEmbedder(hidden_size)
        self.c_embedder = TextProjection(in_channels, hidden_size)
        self.individual_token_refiner = IndividualTokenRefiner(hidden_size, num_heads, depth, mlp_ratio)

    def forward(self, x: torch.Tensor, t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        c = self.t_embedder(t) + self.c_embedder(masked_mean(x, mask))
        return self.individual_token_refiner(self.input_embedder(x), c, mask)


class Step1XEditConnector(ModelMixin, ConfigMixin):
    """Maps MLLM states [B, L, in_channels] + mask [B, L] + t [B] in [0,1] to
    (text tokens [B, L, hidden_size], pooled vector [B, pooled_dim]).

    `use_scale_factor=True` is the v1.0 variant (a learnable factor on the pooled mean); v1.1 has none.
    """

    _supports_gradient_checkpointing = False

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3584,
        hidden_size: int = 4096,
        num_heads: int = 32,
        depth: int = 2,
        mlp_ratio: float = 4.0,
        pooled_dim: int = 768,
        use_scale_factor: bool = False,
    ):
        super().__init__()
        self.S = SingleTokenRefiner(in_channels, hidden_size, num_heads, depth, mlp_ratio)
        self.global_proj_out = nn.Linear(in_channels, pooled_dim)
        if use_scale_factor:
            self.scale_factor = nn.Parameter(torch.full((1,), SCALE_FACTOR_INIT))

    def forward(
        self, hidden_states: torch.Tensor, timestep: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = masked_mean(hidden_states, mask)
        if self.config.use_scale_factor:
            pooled = pooled * (1 + self.scale_factor.to(dtype=pooled.dtype))
        pooled = self.global_proj_out(pooled)
        tokens = self.S(hidden_states, timestep * TIMESTEP_SCALE, mask)
        return tokens, pooled
