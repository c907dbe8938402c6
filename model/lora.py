"""Official Step1X-Edit LoRA files (kohya sd-scripts format) merged into the diffusers DiT.

A kohya module ``lora_unet_double_blocks_0_img_attn_qkv`` holds ``lora_down.weight`` [r, in],
``lora_up.weight`` [out, r] and ``alpha``; the official inference merges ``W += up @ down * alpha / r``.
The delta is computed in the *official* layout and pushed through the same per-key mapping as the checkpoint
(:func:`model.key_mapping.convert_official_dit_key`), so fused qkv / linear1 deltas are split exactly like the
weights, at any model width.

:func:`load_kohya_lora_adapter` is the unmerged alternative: diffusers' ``_convert_kohya_flux_lora_to_diffusers``
+ a peft adapter (switchable, adjustable scale). That converter hard-codes FLUX's width 3072 for the
single-block ``linear1`` split, so it only fits full-width models (or LoRAs without ``linear1``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from model.checkpoints import _full_size_shapes, refuse_unsafe_format
from model.key_mapping import convert_official_dit_key, official_dit_key_for

_KOHYA = re.compile(
    r"lora_unet_(?P<block>double_blocks|single_blocks)_(?P<n>\d+)_(?P<module>"
    r"img_attn_qkv|img_attn_proj|img_mlp_0|img_mlp_2|img_mod_lin|"
    r"txt_attn_qkv|txt_attn_proj|txt_mlp_0|txt_mlp_2|txt_mod_lin|"
    r"linear1|linear2|modulation_lin)"
)
# kohya flattens dots to underscores; these are the official module names with their dots back.
_MODULE_PATHS = {
    "img_attn_qkv": "img_attn.qkv",
    "img_attn_proj": "img_attn.proj",
    "img_mlp_0": "img_mlp.0",
    "img_mlp_2": "img_mlp.2",
    "img_mod_lin": "img_mod.lin",
    "txt_attn_qkv": "txt_attn.qkv",
    "txt_attn_proj": "txt_attn.proj",
    "txt_mlp_0": "txt_mlp.0",
    "txt_mlp_2": "txt_mlp.2",
    "txt_mod_lin": "txt_mod.lin",
    "linear1": "linear1",
    "linear2": "linear2",
    "modulation_lin": "modulation.lin",
}
_SUFFIXES = (".lora_down.weight", ".lora_up.weight", ".alpha")
FLUX_WIDTH = 3072  # the width diffusers' kohya converter assumes


class LoraFormatError(ValueError):
    """The LoRA file has modules this model does not have, or shapes that do not fit."""


def official_key_for_kohya(module: str) -> str | None:
    """``lora_unet_double_blocks_0_img_attn_qkv`` -> ``double_blocks.0.img_attn.qkv.weight``."""
    match = _KOHYA.fullmatch(module)
    if match is None:
        return None
    return f"{match['block']}.{match['n']}.{_MODULE_PATHS[match['module']]}.weight"


def group_kohya_modules(keys: Sequence[str]) -> tuple[dict[str, dict[str, str]], list[str]]:
    """``{module: {suffix: key}}`` for every kohya module, plus the keys that are not kohya LoRA tensors."""
    modules: dict[str, dict[str, str]] = {}
    stray = []
    for key in keys:
        suffix = next((s for s in _SUFFIXES if key.endswith(s)), None)
        if suffix is None:
            stray.append(key)
            continue
        modules.setdefault(key[: -len(suffix)], {})[suffix] = key
    return modules, stray


def official_weight_shapes(diffusers_shapes: Mapping[str, Sequence[int]]) -> dict[str, tuple[int, int]]:
    """Shapes of the official DiT weights, rebuilt from a diffusers definition (fused layers re-stacked)."""
    shapes: dict[str, tuple[int, int]] = {}
    for key, shape in diffusers_shapes.items():
        official = official_dit_key_for(key)
        if official is None or len(shape) != 2:
            continue
        rows, cols = shapes.get(official, (0, shape[1]))
        shapes[official] = (rows + shape[0], cols)
    return shapes


def lora_report(tensors: Mapping) -> tuple[list[str], list[str], list[str]]:
    """(missing, unexpected, mis-shaped) for a kohya LoRA header against the full-size DiT definition."""

    official = official_weight_shapes(_full_size_shapes("transformer"))
    modules, stray = group_kohya_modules(list(tensors))
    missing, unexpected, mis_shaped = [], list(stray), []
    for module, parts in sorted(modules.items()):
        target = official_key_for_kohya(module)
        if target is None or target not in official:
            unexpected += sorted(parts.values())
            continue
        for suffix in (".lora_down.weight", ".lora_up.weight"):
            if suffix not in parts:
                missing.append(module + suffix)
        if len(parts) < 2 or ".lora_down.weight" not in parts or ".lora_up.weight" not in parts:
            continue
        down, up = tensors[parts[".lora_down.weight"]].shape, tensors[parts[".lora_up.weight"]].shape
        out_features, in_features = official[target]
        if (
            len(down) != 2
            or len(up) != 2
            or down[1] != in_features
            or up[0] != out_features
            or up[1] != down[0]
        ):
            mis_shaped.append(
                f"{module}: down {list(down)} / up {list(up)} do not fit {target} {[out_features, in_features]}"
            )
    return missing, unexpected, mis_shaped


def _check_kohya_modules(state_dict: Mapping[str, torch.Tensor]) -> dict[str, dict[str, str]]:
    """Group the file's kohya modules; refuse anything that is not a DiT module this loader can apply."""
    modules, stray = group_kohya_modules(list(state_dict))
    unknown = [m for m in modules if official_key_for_kohya(m) is None]
    if stray or unknown:
        names = sorted(stray + unknown)
        raise LoraFormatError(
            "LoRA modules this loader cannot apply (only kohya 'lora_unet_double_blocks_*' / "
            f"'lora_unet_single_blocks_*' DiT modules are supported): {', '.join(names[:20])}"
            + (f" and {len(names) - 20} more" if len(names) > 20 else "")
        )
    incomplete = [
        m for m, parts in modules.items() if not {".lora_down.weight", ".lora_up.weight"} <= parts.keys()
    ]
    if incomplete:
        raise LoraFormatError(
            f"modules need both lora_down.weight and lora_up.weight: {', '.join(sorted(incomplete))}"
        )
    return modules


def kohya_deltas(state_dict: Mapping[str, torch.Tensor], multiplier: float = 1.0) -> dict[str, torch.Tensor]:
    """Official-layout weight deltas ``up @ down * alpha / rank * multiplier`` (fp32) per official key."""
    deltas = {}
    for module, parts in _check_kohya_modules(state_dict).items():
        down = state_dict[parts[".lora_down.weight"]].float()
        up = state_dict[parts[".lora_up.weight"]].float()
        rank = down.shape[0]
        alpha = float(state_dict[parts[".alpha"]]) if ".alpha" in parts else float(rank)
        deltas[official_key_for_kohya(module)] = (up @ down) * (alpha / rank * multiplier)
    return deltas


@torch.no_grad()
def merge_kohya_lora(transformer: torch.nn.Module, path: str | Path, multiplier: float = 1.0) -> int:
    """Merge an official kohya LoRA file into a ``FluxTransformer2DModel`` in place; returns the module count.

    All shapes are checked before any weight changes, so a bad file leaves the model untouched.
    """
    from safetensors.torch import load_file

    refuse_unsafe_format(Path(path))
    deltas = kohya_deltas(load_file(str(path)), multiplier)
    hidden = transformer.config.num_attention_heads * transformer.config.attention_head_dim
    params = dict(transformer.named_parameters())
    updates: list[tuple[torch.nn.Parameter, torch.Tensor]] = []
    for official_key, delta in deltas.items():
        try:
            parts = convert_official_dit_key(official_key, delta, hidden)
        except ValueError as exc:
            raise LoraFormatError(f"{official_key}: {exc}") from None
        for key, part in parts:
            param = params.get(key)
            if param is None or param.shape != part.shape:
                expected = list(param.shape) if param is not None else "no such weight"
                raise LoraFormatError(
                    f"{official_key} -> {key}: LoRA delta {list(part.shape)}, model {expected}"
                )
            updates.append((param, part))
    for param, part in updates:
        param.add_(part.to(device=param.device, dtype=param.dtype))
    return len(deltas)


def load_kohya_lora_adapter(
    transformer: torch.nn.Module, path: str | Path, adapter_name: str = "step1x-lora", scale: float = 1.0
) -> None:
    """Attach an official kohya LoRA as an unmerged peft adapter (diffusers' kohya converter + peft).

    Fits full-width FLUX DiTs; at other widths a LoRA on single-block ``linear1`` cannot be split by the
    diffusers converter, and :func:`merge_kohya_lora` is the way.
    """
    from diffusers.loaders.lora_conversion_utils import _convert_kohya_flux_lora_to_diffusers
    from safetensors.torch import load_file

    refuse_unsafe_format(Path(path))
    state_dict = load_file(str(path))
    modules = _check_kohya_modules(state_dict)
    width = transformer.config.num_attention_heads * transformer.config.attention_head_dim
    if width != FLUX_WIDTH and any(m.endswith("_linear1") for m in modules):
        raise LoraFormatError(
            f"diffusers' kohya converter splits single-block linear1 at FLUX's width {FLUX_WIDTH}, this DiT is "
            f"{width} wide: use merge_kohya_lora() instead"
        )
    converted = _convert_kohya_flux_lora_to_diffusers(dict(state_dict))
    transformer.load_lora_adapter(converted, prefix="transformer", adapter_name=adapter_name)
    transformer.set_adapters([adapter_name], weights=[scale])
