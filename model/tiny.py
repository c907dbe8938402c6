"""A complete, randomly initialised tiny Step1X-Edit pipeline built locally (no downloads), for tests.

Every component is the real class at a tiny size: a byte-level BPE tokenizer carrying Qwen2.5-VL's special
tokens and chat template, the slow (PIL) Qwen2-VL image processor, a tiny Qwen2.5-VL, the connector, a tiny
FLUX transformer and a tiny FLUX-style VAE.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, FluxTransformer2DModel
from PIL import Image
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from model.connector import Step1XEditConnector
from model.encoder import Qwen25VLImageProcessor, prefix_token_count
from model.pipeline import Step1XEditPipeline
from model.sampling import flux_scheduler

# Qwen2-VL's chat template (chat_template.json of Qwen2.5-VL-7B-Instruct), including add_vision_id.
QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# Qwen2.5-VL's special tokens, in Qwen's order (their ids follow the byte vocabulary here).
QWEN_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
# Merges making the curly quotes single tokens, as in Qwen's vocabulary (the quote-strip rule needs them).
CURLY_QUOTE_MERGES = [("â", "Ģ"), ("âĢ", "ľ"), ("âĢ", "Ŀ")]
# Tiny image budget: 4..16 merged 28x28 image tokens.
TINY_MIN_PIXELS = 4 * 28 * 28
TINY_MAX_PIXELS = 16 * 28 * 28
TINY_TEXT_HIDDEN = 32
TINY_MAX_LENGTH = 128


def _byte_vocab() -> list[str]:
    """GPT-2/Qwen byte-to-unicode alphabet in Qwen's id order ("!" is id 0, which the "!" mask relies on)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = [chr(b) for b in printable]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level BPE tokenizer with Qwen's byte ids, special tokens and chat template."""
    vocab = {token: index for index, token in enumerate(_byte_vocab())}
    for left, right in CURLY_QUOTE_MERGES:
        vocab[left + right] = len(vocab)
    backend = Tokenizer(models.BPE(vocab=vocab, merges=CURLY_QUOTE_MERGES))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(QWEN_SPECIAL_TOKENS)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    tokenizer.chat_template = QWEN2_VL_CHAT_TEMPLATE
    return tokenizer


def tiny_processor() -> Qwen25VLImageProcessor:
    """Qwen2.5-VL processor from the local tokenizer and the slow PIL image processor (no torchvision)."""
    image_processor = Qwen2VLImageProcessorPil(min_pixels=TINY_MIN_PIXELS, max_pixels=TINY_MAX_PIXELS)
    return Qwen25VLImageProcessor(
        image_processor=image_processor, tokenizer=tiny_tokenizer(), chat_template=QWEN2_VL_CHAT_TEMPLATE
    )


def tiny_text_encoder(tokenizer: PreTrainedTokenizerFast) -> Qwen2_5_VLForConditionalGeneration:
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in QWEN_SPECIAL_TOKENS}
    head_dim = TINY_TEXT_HIDDEN // 4
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": TINY_TEXT_HIDDEN,
            "intermediate_size": 2 * TINY_TEXT_HIDDEN,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 4096,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 1e6,
                "mrope_section": [1, 1, head_dim // 2 - 2],
            },
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
        },
        vision_config={
            "depth": 2,
            "hidden_size": 16,
            "intermediate_size": 32,
            "num_heads": 2,
            "out_hidden_size": TINY_TEXT_HIDDEN,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 56,
            "fullatt_block_indexes": [1],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    config._attn_implementation = "sdpa"
    return Qwen2_5_VLForConditionalGeneration(config).eval()


def tiny_transformer(in_channels: int = 64, out_channels: int | None = None) -> FluxTransformer2DModel:
    """FLUX DiT shaped like the official one (64-d tokens, no guidance embedding), 1+1 blocks of width 32.
    `in_channels`/`out_channels` differ for models that concatenate the reference along channels."""
    return FluxTransformer2DModel(
        patch_size=1,
        in_channels=in_channels,
        out_channels=out_channels,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=64,
        pooled_projection_dim=48,
        guidance_embeds=False,
        axes_dims_rope=(4, 6, 6),
    )


def tiny_vae() -> AutoencoderKL:
    """FLUX-shaped VAE (16 latent channels, 8x downsampling, no quant convs) at width 16."""
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(16, 16, 16, 16),
        layers_per_block=1,
        latent_channels=16,
        norm_num_groups=8,
        use_quant_conv=False,
        use_post_quant_conv=False,
        scaling_factor=0.3611,
        shift_factor=0.1159,
    )


def _randomize(module: torch.nn.Module, generator: torch.Generator) -> None:
    """Random values for every parameter, including the zero-initialised gates (so every path is tested)."""
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.2)


def tiny_pipeline(
    seed: int = 0, version: str = "v1.1", max_length: int = TINY_MAX_LENGTH
) -> Step1XEditPipeline:
    """A random tiny pipeline on the CPU in fp32: every stage runs, nothing is downloaded.

    The drop count is computed from the tiny tokenizer (template + PREFIX up to <|vision_start|>), which is
    what the released checkpoints' constant 217 covers for the real tokenizer.
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    processor = tiny_processor()
    text_encoder = tiny_text_encoder(processor.tokenizer)
    connector = Step1XEditConnector(
        in_channels=TINY_TEXT_HIDDEN,
        hidden_size=64,
        num_heads=4,
        depth=2,
        pooled_dim=48,
        use_scale_factor=version == "v1.0",
    )
    transformer = tiny_transformer()
    for module in (connector, transformer):
        _randomize(module, generator)
    drop = prefix_token_count(processor, Image.new("RGB", (64, 64)))
    return Step1XEditPipeline(
        text_encoder=text_encoder,
        processor=processor,
        connector=connector,
        transformer=transformer.eval(),
        vae=tiny_vae().eval(),
        scheduler=flux_scheduler(),
        version=version,
        max_length=max_length,
        drop_tokens=drop,
        model_name="tiny-random (untrained)",
    )
