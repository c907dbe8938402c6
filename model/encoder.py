"""Qwen2.5-VL prompt encoding exactly as the official `Qwen25VL_7b_Embedder` (modules/conditioner.py).

Steps for one (image, instruction): chat template with the fixed PREFIX -> normal tokenisation with the image
expanded -> quote-aware re-tokenisation of the same text -> splice both at the first <|vision_end|> -> mask
`ids > 0` -> last hidden state -> drop the first `drop_tokens` positions -> pad/truncate to `max_length`.
The quirks (apostrophes count as quotes, "!" is masked, a fixed 217-token drop) are part of the trained
model's interface and are reproduced on purpose.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
from PIL import Image
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.models.qwen2_5_vl.processing_qwen2_5_vl import Qwen2_5_VLProcessor
from transformers.processing_utils import ProcessorMixin

logger = logging.getLogger(__name__)

# Byte-exact copy of the official `Qwen25VL_7b_PREFIX` (a non-raw string: each "\n" below is a newline,
# so "overcomplicating.\n" followed by a line break gives an empty line, exactly as in the release).
QWEN25VL_PREFIX = """Given a user prompt, generate an "Enhanced prompt" that provides detailed visual descriptions suitable for image generation. Evaluate the level of detail in the user prompt:
- If the prompt is simple, focus on adding specifics about colors, shapes, sizes, textures, and spatial relationships to create vivid and concrete scenes.
- If the prompt is already detailed, refine and enhance the existing details slightly without overcomplicating.\n
Here are examples of how to transform or refine prompts:
- User Prompt: A cat sleeping -> Enhanced: A small, fluffy white cat curled up in a round shape, sleeping peacefully on a warm sunny windowsill, surrounded by pots of blooming red flowers.
- User Prompt: A busy city street -> Enhanced: A bustling city street scene at dusk, featuring glowing street lamps, a diverse crowd of people in colorful clothing, and a double-decker bus passing by towering glass skyscrapers.\n
Please generate only the enhanced description for the prompt below and avoid including any additional commentary or evaluations:
User Prompt:"""

# Official processor limits: 256..324 merged 28x28 image tokens.
QWEN_MIN_PIXELS = 256 * 28 * 28
QWEN_MAX_PIXELS = 324 * 28 * 28
# Positions dropped from the front of the last hidden state (template header + PREFIX), and the padded
# length the connector sees. Both are fixed by the released checkpoints; small models configure their own.
DEFAULT_DROP_TOKENS = 217
DEFAULT_MAX_LENGTH = 640
# A '"' only toggles quote mode past this character index of the templated text (skips the PREFIX quotes).
QUOTE_START_INDEX = 155
VISION_END_TOKEN = "<|vision_end|>"
VISION_START_TOKEN = "<|vision_start|>"
# qwen_vl_utils.fetch_image rounds every image to multiples of 28 within these limits before the processor.
QWEN_VL_UTILS_FACTOR = 28
QWEN_VL_UTILS_MIN_PIXELS = 4 * 28 * 28
QWEN_VL_UTILS_MAX_PIXELS = 16384 * 28 * 28


class Qwen25VLImageProcessor(Qwen2_5_VLProcessor):
    """Qwen2.5-VL processor for text + images only.

    The stock processor also requires a video processor, which needs torchvision; editing never sends
    video, so this variant leaves it out and otherwise behaves identically.
    """

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        self.image_token = getattr(tokenizer, "image_token", "<|image_pad|>")
        self.video_token = getattr(tokenizer, "video_token", "<|video_pad|>")
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)


def build_messages(image: Image.Image, instruction: str, prefix: str = QWEN25VL_PREFIX) -> list[dict]:
    """One user turn: [PREFIX text, image, instruction text]."""
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": prefix},
                {"type": "image", "image": image},
                {"type": "text", "text": instruction},
            ],
        }
    ]


def split_quoted(text: str) -> list[str]:
    """The official `split_string`: text outside quotes stays whole; inside quotes every character becomes
    its own segment wrapped in curly quotes. Curly quotes AND apostrophes count as '"'; only quotes past
    character QUOTE_START_INDEX toggle (an unmatched apostrophe char-splits everything after it)."""
    text = text.replace("“", '"').replace("”", '"').replace("'", '"')
    segments: list[str] = []
    in_quotes = False
    pending = ""
    for index, char in enumerate(text):
        if char == '"' and index > QUOTE_START_INDEX:
            pending += char
            if not in_quotes:
                segments.append(pending)
                pending = ""
            in_quotes = not in_quotes
            continue
        if in_quotes:
            segments.append("“" + char + "”")
        else:
            pending += char
    if pending:
        segments.append(pending)
    return segments


def _single_token_id(tokenizer: PreTrainedTokenizerBase, text: str) -> int | None:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids[0] if len(ids) == 1 else None


def quote_aware_ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    """Tokenise each `split_quoted` segment on its own; a quoted character loses its wrapping curly quotes
    when the tokenisation starts with the '“' token and ends with the '”' token (ids 2073/854 in Qwen)."""
    open_id, close_id = _single_token_id(tokenizer, "“"), _single_token_id(tokenizer, "”")
    ids: list[int] = []
    for segment in split_quoted(text):
        seg_ids = tokenizer(segment, add_special_tokens=False)["input_ids"]
        if seg_ids and open_id is not None and seg_ids[0] == open_id and seg_ids[-1] == close_id:
            seg_ids = seg_ids[1:-1]
        ids.extend(seg_ids)
    return ids


def splice_at_vision_end(image_ids: list[int], quote_ids: list[int], vision_end_id: int) -> list[int]:
    """Everything before the first <|vision_end|> from the image-expanded tokenisation, everything from it
    on from the quote-aware one."""
    try:
        return image_ids[: image_ids.index(vision_end_id)] + quote_ids[quote_ids.index(vision_end_id) :]
    except ValueError as exc:
        raise ValueError(
            "the prompt template has no <|vision_end|> token; is this a Qwen2.5-VL processor?"
        ) from exc


def qwen_vl_utils_resize(image: Image.Image) -> Image.Image:
    """qwen_vl_utils.fetch_image: round both sides to multiples of 28 (bicubic) before the processor."""
    width, height = image.size
    factor = QWEN_VL_UTILS_FACTOR
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > QWEN_VL_UTILS_MAX_PIXELS:
        beta = math.sqrt(height * width / QWEN_VL_UTILS_MAX_PIXELS)
        h_bar = math.floor(height / beta / factor) * factor
        w_bar = math.floor(width / beta / factor) * factor
    elif h_bar * w_bar < QWEN_VL_UTILS_MIN_PIXELS:
        beta = math.sqrt(QWEN_VL_UTILS_MIN_PIXELS / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return image.convert("RGB").resize((w_bar, h_bar), Image.BICUBIC)


@dataclass
class PromptTokens:
    """Model inputs for one prompt: ids [1, n], mask [1, n], modality types [1, n], image patches and grid."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    mm_token_type_ids: torch.Tensor
    pixel_values: torch.Tensor
    image_grid_thw: torch.Tensor

    def truncated(self, keep: int) -> PromptTokens:
        """The first `keep` tokens. Exact for a causal LM: later tokens never change earlier states."""
        if self.input_ids.shape[1] <= keep:
            return self
        return PromptTokens(
            self.input_ids[:, :keep],
            self.attention_mask[:, :keep],
            self.mm_token_type_ids[:, :keep],
            self.pixel_values,
            self.image_grid_thw,
        )


def tokenize_prompt(
    processor: Qwen2_5_VLProcessor,
    image: Image.Image,
    instruction: str,
    prefix: str = QWEN25VL_PREFIX,
    split_quotes: bool = True,
) -> PromptTokens:
    """Build the official token sequence for one (image, instruction); the mask is the "!"-quirk `ids > 0`.

    `split_quotes=False` skips the quote-aware re-tokenisation: for models trained without it (their own
    tokenizer), where an apostrophe ("I'd") must stay an apostrophe instead of opening a quote."""
    qwen_image = qwen_vl_utils_resize(image)
    text = processor.apply_chat_template(
        build_messages(qwen_image, instruction, prefix),
        tokenize=False,
        add_generation_prompt=True,
        add_vision_id=True,
    )
    inputs = processor(text=[text], images=[qwen_image], padding=True, return_tensors="pt")
    tokenizer = processor.tokenizer
    input_ids = inputs["input_ids"]
    if split_quotes:
        vision_end_id = tokenizer.convert_tokens_to_ids(VISION_END_TOKEN)
        spliced = splice_at_vision_end(input_ids[0].tolist(), quote_aware_ids(tokenizer, text), vision_end_id)
        input_ids = torch.tensor([spliced], dtype=torch.long)
    return PromptTokens(
        input_ids=input_ids,
        # Token id 0 is "!" in Qwen's vocabulary, so exclamation marks are masked out: official behaviour.
        attention_mask=(input_ids > 0).long(),
        # Image tokens are type 1: the model needs them for Qwen's 3D (M-RoPE) positions.
        mm_token_type_ids=(input_ids == processor.image_token_id).int(),
        pixel_values=inputs["pixel_values"],
        image_grid_thw=inputs["image_grid_thw"],
    )


def prefix_token_count(
    processor: Qwen2_5_VLProcessor,
    image: Image.Image,
    prefix: str = QWEN25VL_PREFIX,
    split_quotes: bool = True,
) -> int:
    """Number of tokens up to and including <|vision_start|>: the span a model should drop when it is not
    bound to the released checkpoints' constant 217 (used for small models with their own tokenizer)."""
    tokens = tokenize_prompt(processor, image, "", prefix, split_quotes)
    vision_start_id = processor.tokenizer.convert_tokens_to_ids(VISION_START_TOKEN)
    return tokens.input_ids[0].tolist().index(vision_start_id) + 1


def official_position_ids(text_encoder: PreTrainedModel, tokens: PromptTokens) -> torch.Tensor:
    """Qwen2.5-VL M-RoPE positions [3, 1, n] as transformers 4.x computed them for the released model.

    Masked tokens (every "!") took position 1 there; transformers 5 gives them 0. Their own hidden states
    are kept in the embeddings, so the old value is restored here.
    """
    positions, _ = text_encoder.model.get_rope_index(
        tokens.input_ids,
        tokens.mm_token_type_ids,
        image_grid_thw=tokens.image_grid_thw,
        attention_mask=tokens.attention_mask,
    )
    return positions.masked_fill(tokens.attention_mask[None].eq(0), 1)


@torch.no_grad()
def encode_prompt(
    text_encoder: PreTrainedModel,
    processor: Qwen2_5_VLProcessor,
    image: Image.Image,
    instruction: str,
    max_length: int = DEFAULT_MAX_LENGTH,
    drop_tokens: int = DEFAULT_DROP_TOKENS,
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
    prefix: str = QWEN25VL_PREFIX,
    split_quotes: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Qwen2.5-VL states for one prompt: (embeddings [1, max_length, hidden], mask [1, max_length]).

    Instructions longer than `max_length` tokens after the drop are truncated with a warning.
    """
    device = device or text_encoder.device
    tokens = tokenize_prompt(processor, image, instruction, prefix, split_quotes)
    total = tokens.input_ids.shape[1]
    kept = min(max_length, total - drop_tokens)
    if kept <= 0:
        raise ValueError(f"the prompt has {total} tokens, not more than drop_tokens={drop_tokens}")
    if total - drop_tokens > max_length:
        logger.warning(
            "The instruction is too long: %d prompt tokens after the first %d, only the first %d are used.",
            total - drop_tokens,
            drop_tokens,
            max_length,
        )
    # Qwen only needs the tokens that are kept, but must see every image token it has features for.
    image_positions = tokens.mm_token_type_ids[0].nonzero()
    image_end = int(image_positions.max()) + 1 if len(image_positions) else 0
    tokens = tokens.truncated(max(drop_tokens + max_length, image_end))
    outputs = text_encoder(
        input_ids=tokens.input_ids.to(device),
        attention_mask=tokens.attention_mask.to(device),
        position_ids=official_position_ids(text_encoder, tokens).to(device),
        mm_token_type_ids=tokens.mm_token_type_ids.to(device),
        pixel_values=tokens.pixel_values.to(device, text_encoder.dtype),
        image_grid_thw=tokens.image_grid_thw.to(device),
        output_hidden_states=True,
        use_cache=False,
        logits_to_keep=1,  # only the hidden states are used; skip the vocabulary projection
    )
    states = outputs.hidden_states[-1][0, drop_tokens : drop_tokens + kept]
    hidden = states.shape[-1]
    embeddings = torch.zeros(1, max_length, hidden, device=device, dtype=dtype or states.dtype)
    embeddings[0, :kept] = states.to(embeddings.dtype)
    mask = torch.zeros(1, max_length, dtype=torch.long, device=device)
    mask[0, :kept] = 1
    return embeddings, mask
