"""Key mapping between the official Step1X-Edit checkpoint layout and the diffusers modules used here.

The DiT mapping is the one of diffusers' ``convert_flux_transformer_checkpoint_to_diffusers`` (official
``double_blocks``/``single_blocks`` -> ``FluxTransformer2DModel``), rewritten as per-key rules so that it

* works at any width (diffusers hard-codes ``inner_dim=3072`` for the single-block ``linear1`` split, which
  rules out tiny test models), and
* converts one tensor at a time, so a 25 GB file can be streamed without holding a second copy.

The same rules run on ``meta`` tensors to predict converted names and shapes from a safetensors header alone.
Official files carry no config, so :func:`infer_transformer_config` and friends read the sizes off the shapes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

CONNECTOR_PREFIX = "connector."
OFFICIAL_HEAD_DIM = 128
OFFICIAL_ROPE_AXES = (16, 56, 56)

# FLUX.1 autoencoder as shipped in the official ``vae.safetensors``.
FLUX_VAE_CONFIG: dict = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "latent_channels": 16,
    "norm_num_groups": 32,
    "sample_size": 1024,
    "scaling_factor": 0.3611,
    "shift_factor": 0.1159,
    "use_quant_conv": False,
    "use_post_quant_conv": False,
    "mid_block_add_attention": True,
    "force_upcast": True,
}

# Official connector (modules/connector_edit.py): dimensions hard-coded there, independent of the DiT params.
OFFICIAL_CONNECTOR_CONFIG: dict = {
    "in_channels": 3584,
    "hidden_size": 4096,
    "num_heads": 32,
    "depth": 2,
    "pooled_dim": 768,
}


class CheckpointFormatError(ValueError):
    """The file is not a checkpoint layout this project knows, or is missing the tensors that define its sizes."""


# --------------------------------------------------------------------------------------------------------------
# DiT: official -> FluxTransformer2DModel
# --------------------------------------------------------------------------------------------------------------

Transform = Callable[[torch.Tensor, int], Sequence[torch.Tensor]]


def _same(tensor: torch.Tensor, hidden: int) -> Sequence[torch.Tensor]:
    return (tensor,)


def _chunk_qkv(tensor: torch.Tensor, hidden: int) -> Sequence[torch.Tensor]:
    if tensor.shape[0] != 3 * hidden:
        raise ValueError(f"fused qkv has {tensor.shape[0]} rows, expected 3 x {hidden}")
    return torch.chunk(tensor, 3, dim=0)


def _split_linear1(tensor: torch.Tensor, hidden: int) -> Sequence[torch.Tensor]:
    # Single blocks fuse q, k, v (hidden each) and the MLP input (the rest) into one linear layer.
    mlp = tensor.shape[0] - 3 * hidden
    if mlp <= 0:
        raise ValueError(f"fused linear1 has {tensor.shape[0]} rows, expected 3 x {hidden} + MLP width")
    return torch.split(tensor, (hidden, hidden, hidden, mlp), dim=0)


def _swap_shift_scale(tensor: torch.Tensor, hidden: int) -> Sequence[torch.Tensor]:
    # BFL's final adaLN emits (shift, scale); diffusers' AdaLayerNormContinuous expects (scale, shift).
    shift, scale = tensor.chunk(2, dim=0)
    return (torch.cat([scale, shift], dim=0),)


@dataclass(frozen=True)
class _Rule:
    source: str  # official module path, {n} = block index
    targets: tuple[str, ...]  # diffusers module paths, {n} = block index
    transform: Transform = _same

    @property
    def pattern(self) -> re.Pattern[str]:
        return _template_regex(self.source)


def _template_regex(template: str) -> re.Pattern[str]:
    body = re.escape(template).replace(r"\{n\}", r"(?P<n>\d+)")
    return re.compile(body + r"\.(?P<p>weight|bias|scale)$")


def _rule(source: str, *targets: str, transform: Transform = _same) -> _Rule:
    return _Rule(source, targets, transform)


_D = "double_blocks.{n}."
_S = "single_blocks.{n}."
_TB = "transformer_blocks.{n}."
_STB = "single_transformer_blocks.{n}."

_OFFICIAL_DIT_RULES: tuple[_Rule, ...] = (
    _rule("time_in.in_layer", "time_text_embed.timestep_embedder.linear_1"),
    _rule("time_in.out_layer", "time_text_embed.timestep_embedder.linear_2"),
    _rule("vector_in.in_layer", "time_text_embed.text_embedder.linear_1"),
    _rule("vector_in.out_layer", "time_text_embed.text_embedder.linear_2"),
    _rule("guidance_in.in_layer", "time_text_embed.guidance_embedder.linear_1"),
    _rule("guidance_in.out_layer", "time_text_embed.guidance_embedder.linear_2"),
    _rule("txt_in", "context_embedder"),
    _rule("img_in", "x_embedder"),
    _rule(_D + "img_mod.lin", _TB + "norm1.linear"),
    _rule(_D + "txt_mod.lin", _TB + "norm1_context.linear"),
    _rule(_D + "img_attn.qkv", *(_TB + f"attn.to_{x}" for x in "qkv"), transform=_chunk_qkv),
    _rule(_D + "txt_attn.qkv", *(_TB + f"attn.add_{x}_proj" for x in "qkv"), transform=_chunk_qkv),
    _rule(_D + "img_attn.norm.query_norm", _TB + "attn.norm_q"),
    _rule(_D + "img_attn.norm.key_norm", _TB + "attn.norm_k"),
    _rule(_D + "txt_attn.norm.query_norm", _TB + "attn.norm_added_q"),
    _rule(_D + "txt_attn.norm.key_norm", _TB + "attn.norm_added_k"),
    _rule(_D + "img_attn.proj", _TB + "attn.to_out.0"),
    _rule(_D + "txt_attn.proj", _TB + "attn.to_add_out"),
    _rule(_D + "img_mlp.0", _TB + "ff.net.0.proj"),
    _rule(_D + "img_mlp.2", _TB + "ff.net.2"),
    _rule(_D + "txt_mlp.0", _TB + "ff_context.net.0.proj"),
    _rule(_D + "txt_mlp.2", _TB + "ff_context.net.2"),
    _rule(_S + "modulation.lin", _STB + "norm.linear"),
    _rule(
        _S + "linear1", *(_STB + f"attn.to_{x}" for x in "qkv"), _STB + "proj_mlp", transform=_split_linear1
    ),
    _rule(_S + "norm.query_norm", _STB + "attn.norm_q"),
    _rule(_S + "norm.key_norm", _STB + "attn.norm_k"),
    _rule(_S + "linear2", _STB + "proj_out"),
    _rule("final_layer.linear", "proj_out"),
    _rule("final_layer.adaLN_modulation.1", "norm_out.linear", transform=_swap_shift_scale),
)
_COMPILED_RULES = tuple((rule, rule.pattern) for rule in _OFFICIAL_DIT_RULES)
_COMPILED_INVERSE = tuple((rule, [_template_regex(t) for t in rule.targets]) for rule in _OFFICIAL_DIT_RULES)

# The diffusers-format fork (Step1XEditTransformer2DModel) uses Flux names except for the two embedders.
_FORK_RENAMES: tuple[tuple[str, str], ...] = (
    ("time_embed.in_layer.", "time_text_embed.timestep_embedder.linear_1."),
    ("time_embed.out_layer.", "time_text_embed.timestep_embedder.linear_2."),
    ("vec_embed.in_layer.", "time_text_embed.text_embedder.linear_1."),
    ("vec_embed.out_layer.", "time_text_embed.text_embedder.linear_2."),
)


def convert_official_dit_key(
    key: str, tensor: torch.Tensor, hidden_size: int
) -> list[tuple[str, torch.Tensor]]:
    """Map one official DiT tensor to its ``FluxTransformer2DModel`` tensor(s).

    Raises ``KeyError`` for a key no rule knows and ``ValueError`` when a fused tensor cannot be split at
    ``hidden_size``.
    """
    for rule, pattern in _COMPILED_RULES:
        match = pattern.fullmatch(key)
        if match is None:
            continue
        # QK-norm gains are called ``scale`` in BFL code and ``weight`` in diffusers.
        param = "weight" if match["p"] == "scale" else match["p"]
        names = [t.format(n=match.groupdict().get("n")) + "." + param for t in rule.targets]
        return list(zip(names, rule.transform(tensor, hidden_size), strict=True))
    raise KeyError(key)


def official_dit_key_for(diffusers_key: str) -> str | None:
    """The official key a ``FluxTransformer2DModel`` key comes from (for error messages), or ``None``."""
    for rule, patterns in _COMPILED_INVERSE:
        for pattern in patterns:
            match = pattern.fullmatch(diffusers_key)
            if match is None:
                continue
            param = "scale" if rule.source.endswith("_norm") else match["p"]
            return rule.source.format(n=match.groupdict().get("n")) + "." + param
    return None


def convert_fork_dit_key(key: str) -> str:
    """Rename a key of the diffusers-format fork's transformer (``time_embed``/``vec_embed``) to Flux names."""
    for old, new in _FORK_RENAMES:
        if key.startswith(old):
            return new + key[len(old) :]
    return key


def strip_connector_prefix(key: str) -> str | None:
    """``connector.S.x`` -> ``S.x``; ``None`` for keys that do not belong to the connector."""
    return key[len(CONNECTOR_PREFIX) :] if key.startswith(CONNECTOR_PREFIX) else None


# --------------------------------------------------------------------------------------------------------------
# Whole-dict conversion with provenance (used on meta tensors for reports and on real tensors for small files)
# --------------------------------------------------------------------------------------------------------------


@dataclass
class Conversion:
    """Converted tensors per target module, where each came from, and what could not be mapped."""

    modules: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)  # module -> key -> tensor
    origin: dict[str, str] = field(default_factory=dict)  # "module:key" -> source key
    unmapped: list[str] = field(default_factory=list)  # source keys no rule knows
    errors: dict[str, str] = field(default_factory=dict)  # source key -> why it could not be converted

    def add(self, module: str, key: str, tensor: torch.Tensor, source: str) -> None:
        self.modules.setdefault(module, {})[key] = tensor
        self.origin[f"{module}:{key}"] = source


def route_dit_key(
    key: str, tensor: torch.Tensor, hidden_size: int, layout: str
) -> list[tuple[str, str, torch.Tensor]]:
    """Route one DiT-file tensor to ``(module, key, tensor)`` items: ``transformer`` or ``connector``.

    ``layout`` is ``"official"`` (BFL names) or ``"diffusers"`` (Flux or fork names). Raises like
    :func:`convert_official_dit_key`.
    """
    connector_key = strip_connector_prefix(key)
    if connector_key is not None:
        return [("connector", connector_key, tensor)]
    if layout == "official":
        return [("transformer", k, t) for k, t in convert_official_dit_key(key, tensor, hidden_size)]
    return [("transformer", convert_fork_dit_key(key), tensor)]


def convert_dit_state_dict(tensors: Mapping[str, torch.Tensor], hidden_size: int, layout: str) -> Conversion:
    """Convert a whole DiT state dict (official or diffusers layout), recording provenance and failures."""
    result = Conversion()
    for key, tensor in tensors.items():
        try:
            items = route_dit_key(key, tensor, hidden_size, layout)
        except KeyError:
            result.unmapped.append(key)
            continue
        except ValueError as exc:
            result.errors[key] = str(exc)
            continue
        for module, new_key, new_tensor in items:
            result.add(module, new_key, new_tensor, key)
    return result


def convert_ldm_vae_state_dict(tensors: Mapping[str, torch.Tensor], config: Mapping) -> Conversion:
    """Convert a BFL/LDM ``vae.safetensors`` with diffusers' own converter, and find the keys it dropped.

    diffusers' converter silently skips keys it does not know; every VAE key maps 1:1 (possibly as a view that
    squeezes 1x1 convs), so a source key that no output tensor is, or views, was not mapped.
    """
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    converted = convert_ldm_vae_checkpoint(dict(tensors), dict(config))
    by_id = {id(t): k for k, t in tensors.items()}
    result = Conversion()
    for new_key, tensor in converted.items():
        source = by_id.get(id(tensor)) or by_id.get(id(tensor._base), "?")
        result.add("vae", new_key, tensor, source)
    used = set(result.origin.values())
    result.unmapped = [k for k in tensors if k not in used]
    return result


# diffusers AutoencoderKL name -> BFL/LDM name, part by part (the inverse of diffusers' converter, for reports).
_VAE_NAME_PARTS = (
    (
        re.compile(r"^(encoder|decoder)\.mid_block\.resnets\.(\d)\."),
        lambda m: f"{m[1]}.mid.block_{int(m[2]) + 1}.",
    ),
    (re.compile(r"^(encoder|decoder)\.mid_block\.attentions\.0\."), lambda m: f"{m[1]}.mid.attn_1."),
    (re.compile(r"^encoder\.down_blocks\.(\d+)\.resnets\."), lambda m: f"encoder.down.{m[1]}.block."),
    (
        re.compile(r"^encoder\.down_blocks\.(\d+)\.downsamplers\.0\."),
        lambda m: f"encoder.down.{m[1]}.downsample.",
    ),
)
_VAE_LEAF_NAMES = {
    "conv_shortcut": "nin_shortcut",
    "group_norm": "norm",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out.0": "proj_out",
    "conv_norm_out": "norm_out",
}


def ldm_vae_key_for(diffusers_key: str, levels: int) -> str:
    """The BFL/LDM (official ``vae.safetensors``) name of a diffusers ``AutoencoderKL`` key; ``levels`` is the
    number of resolution levels (the decoder's up blocks are numbered in reverse: up_blocks.0 is up.{levels-1})."""
    key = diffusers_key
    up = re.match(r"^decoder\.up_blocks\.(\d+)\.(resnets|upsamplers\.0)\.", key)
    if up:
        part = "block." if up[2] == "resnets" else "upsample."
        key = f"decoder.up.{levels - 1 - int(up[1])}.{part}" + key[up.end() :]
    for pattern, replace in _VAE_NAME_PARTS:
        key = pattern.sub(replace, key)
    for new, old in _VAE_LEAF_NAMES.items():
        key = key.replace(f".{new}.", f".{old}.")
    return key


# --------------------------------------------------------------------------------------------------------------
# Configs read off tensor shapes (official files carry none)
# --------------------------------------------------------------------------------------------------------------


def rope_axes_for_head_dim(head_dim: int) -> tuple[int, int, int]:
    """RoPE axes for a head size: the official (16, 56, 56) at 128, scaled with the same 1:3.5:3.5 split."""
    if head_dim == OFFICIAL_HEAD_DIM:
        return OFFICIAL_ROPE_AXES
    spatial = 2 * math.floor(7 * head_dim / 32)  # each rope axis needs an even width
    return (head_dim - 2 * spatial, spatial, spatial)


def _require(shapes: Mapping[str, Sequence[int]], keys: Iterable[str], what: str) -> None:
    missing = [k for k in keys if k not in shapes]
    if missing:
        raise CheckpointFormatError(f"cannot read the {what} sizes: missing {', '.join(missing)}")


def _count_blocks(keys: Iterable[str], prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    indices = {int(m.group(1)) for k in keys if (m := pattern.match(k))}
    return max(indices) + 1 if indices else 0


def infer_transformer_config(shapes: Mapping[str, Sequence[int]]) -> dict:
    """``FluxTransformer2DModel`` config from the shapes of an official DiT checkpoint."""
    anchors = ("img_in.weight", "txt_in.weight", "vector_in.in_layer.weight", "final_layer.linear.weight")
    _require(shapes, anchors, "DiT")
    norm_keys = [k for k in shapes if k.endswith("norm.query_norm.scale")]
    if not norm_keys:
        raise CheckpointFormatError("cannot read the DiT head size: no *.norm.query_norm.scale tensor")
    hidden, in_channels = shapes["img_in.weight"]
    out_channels = shapes["final_layer.linear.weight"][0]
    head_dim = shapes[norm_keys[0]][0]
    return {
        "patch_size": 1,
        "in_channels": in_channels,
        # None = same as in_channels, as in the diffusers default config
        "out_channels": None if out_channels == in_channels else out_channels,
        "num_layers": _count_blocks(shapes, "double_blocks."),
        "num_single_layers": _count_blocks(shapes, "single_blocks."),
        "attention_head_dim": head_dim,
        "num_attention_heads": hidden // head_dim,
        "joint_attention_dim": shapes["txt_in.weight"][1],
        "pooled_projection_dim": shapes["vector_in.in_layer.weight"][1],
        "guidance_embeds": any(k.startswith("guidance_in.") for k in shapes),
        "axes_dims_rope": rope_axes_for_head_dim(head_dim),
    }


def infer_connector_config(shapes: Mapping[str, Sequence[int]], head_dim: int) -> dict:
    """``Step1XEditConnector`` config from connector shapes (``connector.`` prefix already stripped).

    The head count is not visible in any shape; the official connector uses the DiT's head size (4096 / 32 =
    128), so ``head_dim`` is the DiT's.
    """
    fc1 = "S.individual_token_refiner.blocks.0.mlp.fc1.weight"
    _require(shapes, ("S.input_embedder.weight", "global_proj_out.weight", fc1), "connector")
    hidden, in_channels = shapes["S.input_embedder.weight"]
    return {
        "in_channels": in_channels,
        "hidden_size": hidden,
        "num_heads": max(1, hidden // head_dim),
        "depth": _count_blocks(shapes, "S.individual_token_refiner.blocks."),
        "mlp_ratio": shapes[fc1][0] / hidden,
        "pooled_dim": shapes["global_proj_out.weight"][0],
        "use_scale_factor": "scale_factor" in shapes,
    }


def infer_ldm_vae_config(shapes: Mapping[str, Sequence[int]]) -> dict:
    """``AutoencoderKL`` config from the shapes of a BFL/LDM VAE file (FLUX scaling constants kept)."""
    _require(shapes, ("encoder.conv_in.weight", "encoder.conv_out.weight", "decoder.conv_out.weight"), "VAE")
    levels = _count_blocks(shapes, "encoder.down.")
    widths = [shapes[f"encoder.down.{i}.block.0.conv1.weight"][0] for i in range(levels)]
    config = dict(FLUX_VAE_CONFIG)
    config.update(
        in_channels=shapes["encoder.conv_in.weight"][1],
        out_channels=shapes["decoder.conv_out.weight"][0],
        down_block_types=["DownEncoderBlock2D"] * levels,
        up_block_types=["UpDecoderBlock2D"] * levels,
        block_out_channels=widths,
        layers_per_block=_count_blocks(shapes, "encoder.down.0.block."),
        latent_channels=shapes["encoder.conv_out.weight"][0] // 2,
        norm_num_groups=math.gcd(32, min(widths)),
        use_quant_conv="quant_conv.weight" in shapes,
        use_post_quant_conv="post_quant_conv.weight" in shapes,
    )
    return config
