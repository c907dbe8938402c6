"""The official Qwen2.5-VL prompt pipeline: template, quote-aware re-tokenisation, splice, masks, slicing."""

from __future__ import annotations

import hashlib
import logging

import pytest
import torch
from PIL import Image
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from model.encoder import (
    DEFAULT_DROP_TOKENS,
    DEFAULT_MAX_LENGTH,
    QUOTE_START_INDEX,
    QWEN25VL_PREFIX,
    QWEN_MAX_PIXELS,
    QWEN_MIN_PIXELS,
    build_messages,
    encode_prompt,
    official_position_ids,
    prefix_token_count,
    quote_aware_ids,
    qwen_vl_utils_resize,
    splice_at_vision_end,
    split_quoted,
    tokenize_prompt,
)

PAD = "x" * (QUOTE_START_INDEX + 1)  # pushes what follows past the index where quotes start to count
IMAGE = Image.new("RGB", (64, 48), (200, 30, 30))


def test_prefix_is_the_official_string() -> None:
    assert QWEN25VL_PREFIX.startswith('Given a user prompt, generate an "Enhanced prompt" that provides')
    assert QWEN25VL_PREFIX.endswith("any additional commentary or evaluations:\nUser Prompt:")
    # The two "\n" escapes of the official non-raw string each add an empty line.
    assert QWEN25VL_PREFIX.count("\n\n") == 2 and "\\n" not in QWEN25VL_PREFIX
    assert len(QWEN25VL_PREFIX) == 1058
    digest = hashlib.sha256(QWEN25VL_PREFIX.encode()).hexdigest()
    assert digest == "40882ddca94ca6971c8d5713d42464afa31dad09236dfacafe3ee26b4b44aa82"


def test_chat_template_with_vision_id(processor) -> None:
    text = processor.apply_chat_template(
        build_messages(IMAGE, "make it red"), tokenize=False, add_generation_prompt=True, add_vision_id=True
    )
    expected_head = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
    assert text.startswith(expected_head + QWEN25VL_PREFIX)
    assert text.endswith(
        "User Prompt:Picture 1: <|vision_start|><|image_pad|><|vision_end|>make it red<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_split_quotes_only_past_index_155() -> None:
    assert split_quoted('say "hi" now') == ['say "hi" now']  # early quotes never toggle
    assert split_quoted(PAD + 'say "hi" now') == [PAD + 'say "', "“h”", "“i”", '" now']


def test_split_curly_quotes_and_apostrophe_quirk() -> None:
    assert split_quoted(PAD + "a “b” c") == [PAD + 'a "', "“b”", '" c']
    # An unmatched apostrophe opens a quote: everything after it is split per character.
    assert split_quoted(PAD + "girl's hat") == [PAD + 'girl"', "“s”", "“ ”", "“h”", "“a”", "“t”"]


def test_quote_aware_ids_strip_curly_quote_tokens(processor) -> None:
    tok = processor.tokenizer
    open_id, close_id = tok("“")["input_ids"], tok("”")["input_ids"]
    assert len(open_id) == len(close_id) == 1  # single tokens, like 2073 / 854 in Qwen
    ids = quote_aware_ids(tok, PAD + 'say "hi"')
    head = tok(PAD + 'say "')["input_ids"]
    assert ids == head + tok("h")["input_ids"] + tok("i")["input_ids"] + tok('"')["input_ids"]
    # A multi-byte character inside quotes keeps its bytes, loses only the wrapping quote tokens.
    assert quote_aware_ids(tok, PAD + '"红"')[len(head) - 4 :][:3] == tok("红")["input_ids"]


def test_splice_takes_image_part_then_quote_aware_part() -> None:
    vision_end = 99
    image_ids = [1, 2, 7, 7, 7, vision_end, 5, 6]
    quote_ids = [1, 2, 7, vision_end, 8, 9, 10]
    assert splice_at_vision_end(image_ids, quote_ids, vision_end) == [1, 2, 7, 7, 7, vision_end, 8, 9, 10]
    with pytest.raises(ValueError, match="vision_end"):
        splice_at_vision_end([1, 2], [1, 2], vision_end)


def test_tokenize_prompt_splices_and_masks_exclamation(processor) -> None:
    tokens = tokenize_prompt(processor, IMAGE, "make it red!")
    ids = tokens.input_ids[0].tolist()
    tok = processor.tokenizer
    vision_end = tok.convert_tokens_to_ids("<|vision_end|>")
    image_pad = tok.convert_tokens_to_ids("<|image_pad|>")
    n_image = int(tokens.image_grid_thw.prod() // 4)
    assert ids.count(image_pad) == n_image == int(tokens.mm_token_type_ids.sum())
    tail = ids[ids.index(vision_end) :]
    assert tok.decode(tail) == "<|vision_end|>make it red!<|im_end|>\n<|im_start|>assistant\n"
    exclamation = tok("!")["input_ids"][0]
    assert exclamation == 0  # as in Qwen's vocabulary, "!" is id 0 ...
    masked = [i for i, m in enumerate(tokens.attention_mask[0].tolist()) if m == 0]
    assert masked == [i for i, t in enumerate(ids) if t == 0] and len(masked) == 1  # ... and masked out


def test_apostrophe_char_splits_template_tail(processor) -> None:
    """The official quirk: after an unmatched apostrophe the chat-template tail is char-tokenised too."""
    tok = processor.tokenizer
    tokens = tokenize_prompt(processor, IMAGE, "the girl's hat")
    ids = tokens.input_ids[0].tolist()
    tail = ids[ids.index(tok.convert_tokens_to_ids("<|vision_end|>")) :]
    # "<|im_end|>" and "<|im_start|>" were split into characters, not kept as special tokens ...
    assert tok.convert_tokens_to_ids("<|im_end|>") not in tail
    assert tok.convert_tokens_to_ids("<|im_start|>") not in tail
    # ... and the text is otherwise the template with the apostrophe turned into '"'.
    assert tok.decode(tail) == '<|vision_end|>the girl"s hat<|im_end|>\n<|im_start|>assistant\n'
    assert len(tail) > len(
        tok('<|vision_end|>the girl"s hat<|im_end|>\n<|im_start|>assistant\n')["input_ids"]
    )


def _last_hidden_state(encoder, tokens) -> torch.Tensor:
    """hidden_states[-1] of one untruncated forward with the model's own position ids."""
    with torch.no_grad():
        return encoder(
            input_ids=tokens.input_ids,
            attention_mask=tokens.attention_mask,
            mm_token_type_ids=tokens.mm_token_type_ids,
            pixel_values=tokens.pixel_values,
            image_grid_thw=tokens.image_grid_thw,
            output_hidden_states=True,
        ).hidden_states[-1][0]


@pytest.mark.parametrize(("drop", "max_length"), [(None, 64), (DEFAULT_DROP_TOKENS, DEFAULT_MAX_LENGTH)])
def test_drop_and_pad_slicing(tiny_pipe, drop, max_length) -> None:
    """Embeddings are hidden_states[-1][drop:drop+max_length], zero-padded, with mask ones over the kept span
    (with the tiny tokenizer's own drop count, and with the official 217 / 640)."""
    encoder, processor = tiny_pipe.text_encoder, tiny_pipe.processor
    drop = tiny_pipe.config.drop_tokens if drop is None else drop
    tokens = tokenize_prompt(processor, IMAGE, "make the sky green")
    full = _last_hidden_state(encoder, tokens)
    kept = min(max_length, full.shape[0] - drop)
    emb, mask = encode_prompt(
        encoder, processor, IMAGE, "make the sky green", max_length=max_length, drop_tokens=drop
    )
    assert emb.shape == (1, max_length, full.shape[1]) and mask.shape == (1, max_length)
    assert int(mask.sum()) == kept and mask[0, :kept].all()
    assert torch.allclose(emb[0, :kept], full[drop : drop + kept], atol=1e-6)
    assert torch.count_nonzero(emb[0, kept:]) == 0


def test_long_instruction_truncated_with_warning(tiny_pipe, caplog) -> None:
    """Truncating before the forward is exact (causal LM); the user is warned."""
    encoder, processor = tiny_pipe.text_encoder, tiny_pipe.processor
    drop = tiny_pipe.config.drop_tokens
    instruction = ("make the bicycle blue and the sky orange " * 250)[:10_000]
    assert len(instruction) == 10_000
    with caplog.at_level(logging.WARNING, logger="model.encoder"):
        emb, mask = encode_prompt(encoder, processor, IMAGE, instruction, max_length=32, drop_tokens=drop)
    assert "too long" in caplog.text
    assert int(mask.sum()) == 32
    shorter = instruction[:300]  # enough tokens to fill 32 slots
    caplog.clear()
    emb_short, _ = encode_prompt(encoder, processor, IMAGE, shorter, max_length=32, drop_tokens=drop)
    assert torch.allclose(emb, emb_short, atol=1e-6)


def test_chinese_instruction(tiny_pipe) -> None:
    emb, mask = encode_prompt(
        tiny_pipe.text_encoder,
        tiny_pipe.processor,
        IMAGE,
        "把汽车变成红色“红”",
        max_length=64,
        drop_tokens=tiny_pipe.config.drop_tokens,
    )
    assert torch.isfinite(emb).all() and 0 < int(mask.sum()) <= 64


def test_prefix_token_count_ends_at_vision_start(processor) -> None:
    count = prefix_token_count(processor, IMAGE)
    ids = tokenize_prompt(processor, IMAGE, "x").input_ids[0].tolist()
    assert ids[count - 1] == processor.tokenizer.convert_tokens_to_ids("<|vision_start|>")


@pytest.mark.parametrize(
    ("size", "rounded", "image_tokens"),
    [((512, 512), (504, 504), 324), ((1168, 880), (1176, 868), 300), ((592, 432), (588, 420), 315)],
)
def test_official_image_token_budget(size, rounded, image_tokens) -> None:
    """qwen_vl_utils rounding to 28, then the processor's 256..324-token budget (architecture notes)."""
    image = qwen_vl_utils_resize(Image.new("RGB", size))
    assert image.size == rounded
    processor = Qwen2VLImageProcessorPil(min_pixels=QWEN_MIN_PIXELS, max_pixels=QWEN_MAX_PIXELS)
    grid = processor(images=[image], return_tensors="pt")["image_grid_thw"]
    assert int(grid.prod()) // 4 == image_tokens


def test_masked_tokens_take_position_one_as_in_transformers_4(tiny_pipe) -> None:
    """The released model was encoded with transformers 4.x, whose M-RoPE ids start from ones: a masked "!"
    keeps position 1 there (transformers 5 would give it 0). Everything else is the model's own rule."""
    encoder = tiny_pipe.text_encoder
    tokens = tokenize_prompt(tiny_pipe.processor, IMAGE, "make it red! now")
    ours = official_position_ids(encoder, tokens)
    default = encoder.model.compute_3d_position_ids(
        tokens.input_ids,
        tokens.image_grid_thw,
        None,
        None,
        tokens.attention_mask,
        None,
        mm_token_type_ids=tokens.mm_token_type_ids,
    )
    masked = tokens.attention_mask[0] == 0
    assert int(masked.sum()) == 1
    assert (ours[:, 0, masked] == 1).all() and (default[:, 0, masked] == 0).all()
    assert torch.equal(ours[:, 0, ~masked], default[:, 0, ~masked])
    # The "!" position changes that token's own state, which is part of the kept embeddings.
    emb, mask = encode_prompt(
        encoder,
        tiny_pipe.processor,
        IMAGE,
        "make it red! now",
        max_length=64,
        drop_tokens=tiny_pipe.config.drop_tokens,
    )
    plain = _last_hidden_state(encoder, tokens)[tiny_pipe.config.drop_tokens :]
    index = int(masked.nonzero()[0]) - tiny_pipe.config.drop_tokens
    assert not torch.allclose(emb[0, index], plain[index])
    others = torch.arange(int(mask.sum())) != index
    assert torch.allclose(emb[0, : int(mask.sum())][others], plain[: int(mask.sum())][others], atol=1e-6)
