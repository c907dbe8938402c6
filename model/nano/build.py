"""Construct a fresh (untrained) Step1X-Edit-Nano pipeline: the real pipeline class and component classes
at a small size, configured for pixel space.

Differences from the released model are configuration only (see docs/nano.md for the measurements behind
them): pixels instead of VAE latents, 8x8 pixel patches as tokens, the reference concatenated to every
target token along channels, a reference-residual output with a zero-initialised output layer (the model
starts as "copy the source"), a short prompt prefix and max_length, one sampling step, no CFG.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
from diffusers import FluxTransformer2DModel
from PIL import Image
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from model.connector import Step1XEditConnector
from model.encoder import Qwen25VLImageProcessor, prefix_token_count
from model.nano.tokenizer import NANO_PREFIX, build_tokenizer
from model.pipeline import Step1XEditPipeline
from model.tiny import QWEN2_VL_CHAT_TEMPLATE, QWEN_SPECIAL_TOKENS

NANO_NAME = "step1x-edit-nano"
QWEN_IMAGE_PIXELS = 56 * 56  # Qwen sees every image as 2x2 merged tokens of 28x28 pixels


@dataclass(frozen=True)
class NanoConfig:
    """Sizes of the nano model; every field is recorded in the model card."""

    size: int = 32  # working resolution (pixels per side)
    patch_size: int = 8  # pixels per token side
    text_hidden: int = 64  # Qwen2.5-VL width
    text_layers: int = 2
    vision_hidden: int = 32
    connector_hidden: int = 128
    connector_depth: int = 1
    width: int = 192  # DiT inner dim = heads x head_dim; >= 8*8*3 so a patch's output has full rank
    head_dim: int = 32
    double_layers: int = 2
    single_layers: int = 2
    pooled_dim: int = 64
    max_length: int = 40  # image tokens + the longest phrasings (~23 tokens) + the chat tail, with room
    steps: int = 1


@lru_cache(maxsize=1)
def _default_tokenizer():
    return build_tokenizer()  # deterministic; trained once per process


def nano_processor(tokenizer=None) -> Qwen25VLImageProcessor:
    """Qwen2.5-VL processor with the nano BPE tokenizer and a fixed 56x56 image budget."""
    tokenizer = tokenizer or _default_tokenizer()
    image_processor = Qwen2VLImageProcessorPil(min_pixels=QWEN_IMAGE_PIXELS, max_pixels=QWEN_IMAGE_PIXELS)
    return Qwen25VLImageProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=QWEN2_VL_CHAT_TEMPLATE
    )


def nano_text_encoder(tokenizer, config: NanoConfig) -> Qwen2_5_VLForConditionalGeneration:
    """A small Qwen2.5-VL (text + vision tower) sized by `config`."""
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in QWEN_SPECIAL_TOKENS}
    heads = 4
    head_dim = config.text_hidden // heads
    qwen = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": config.text_hidden,
            "intermediate_size": 2 * config.text_hidden,
            "num_hidden_layers": config.text_layers,
            "num_attention_heads": heads,
            "num_key_value_heads": 2,
            "max_position_embeddings": 512,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 10000.0,
                "mrope_section": [head_dim // 2 - 2 * (head_dim // 6), head_dim // 6, head_dim // 6],
            },
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 1,
            "hidden_size": config.vision_hidden,
            "intermediate_size": 2 * config.vision_hidden,
            "num_heads": 2,
            "out_hidden_size": config.text_hidden,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 56,
            "fullatt_block_indexes": [0],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    qwen._attn_implementation = "sdpa"
    return Qwen2_5_VLForConditionalGeneration(qwen)


def nano_transformer(config: NanoConfig) -> FluxTransformer2DModel:
    """FLUX DiT over pixel-patch tokens; input = [noisy target ; reference] along channels."""
    token_dim = 3 * config.patch_size**2
    rope_h = (config.head_dim // 8) * 3  # rope dims: (t, h, w) = (rest, 3/8, 3/8) of the head
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=2 * token_dim,
        out_channels=token_dim,
        num_layers=config.double_layers,
        num_single_layers=config.single_layers,
        attention_head_dim=config.head_dim,
        num_attention_heads=config.width // config.head_dim,
        joint_attention_dim=config.connector_hidden,
        pooled_projection_dim=config.pooled_dim,
        guidance_embeds=False,
        axes_dims_rope=(config.head_dim - 2 * rope_h, rope_h, rope_h),
    )
    # Zero output: the untrained model returns the reference exactly (x0 = ref + 0).
    torch.nn.init.zeros_(transformer.proj_out.weight)
    torch.nn.init.zeros_(transformer.proj_out.bias)
    return transformer


def build_nano_pipeline(config: NanoConfig = NanoConfig(), seed: int = 0) -> Step1XEditPipeline:
    """A freshly initialised nano pipeline (fp32, CPU)."""
    torch.manual_seed(seed)
    processor = nano_processor()
    connector = Step1XEditConnector(
        in_channels=config.text_hidden,
        hidden_size=config.connector_hidden,
        num_heads=config.connector_hidden // 32,
        depth=config.connector_depth,
        pooled_dim=config.pooled_dim,
    )
    blank = Image.new("RGB", (config.size, config.size))
    drop = prefix_token_count(processor, blank, NANO_PREFIX, split_quotes=False)
    return Step1XEditPipeline(
        text_encoder=nano_text_encoder(processor.tokenizer, config),
        processor=processor,
        connector=connector,
        transformer=nano_transformer(config),
        vae=None,
        scheduler=None,
        max_length=config.max_length,
        drop_tokens=drop,
        prompt_prefix=NANO_PREFIX,
        split_quotes=False,  # an apostrophe ("i'd") is an apostrophe, not the start of a quote
        patch_size=config.patch_size,
        ref_mode="channel",
        prediction="ref_residual",
        default_size_level=config.size,
        default_steps=config.steps,
        default_guidance_scale=-1,
        model_name=NANO_NAME,
    )
